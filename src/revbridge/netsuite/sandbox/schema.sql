-- The sandbox's own tables, named and shaped like NetSuite's SuiteQL tables so that a SuiteQL
-- query written for a real account runs here unchanged (for the columns the sandbox models).
-- Booleans are 'T'/'F' text as SuiteQL returns them; timestamps are UTC text
-- 'YYYY-MM-DD HH:MM:SS.ffffff' so that string order is time order; money is NUMERIC and is
-- converted to Decimal on every read by the Python side.

CREATE TABLE IF NOT EXISTS currency (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    symbol TEXT NOT NULL UNIQUE,
    displaysymbol TEXT NOT NULL,
    currencyprecision INTEGER NOT NULL,
    exchangerate NUMERIC NOT NULL,
    isbasecurrency TEXT NOT NULL DEFAULT 'F',
    isinactive TEXT NOT NULL DEFAULT 'F',
    lastmodifieddate TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS subsidiary (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    fullname TEXT NOT NULL,
    currency INTEGER NOT NULL REFERENCES currency (id),
    country TEXT NOT NULL,
    iselimination TEXT NOT NULL DEFAULT 'F',
    isinactive TEXT NOT NULL DEFAULT 'F',
    lastmodifieddate TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS account (
    id INTEGER PRIMARY KEY,
    acctnumber TEXT NOT NULL UNIQUE,
    fullname TEXT NOT NULL,
    accountsearchdisplayname TEXT NOT NULL,
    accttype TEXT NOT NULL,
    specialaccounttype TEXT,
    isinactive TEXT NOT NULL DEFAULT 'F',
    lastmodifieddate TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS term (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    daysuntilnetdue INTEGER NOT NULL,
    isinactive TEXT NOT NULL DEFAULT 'F',
    lastmodifieddate TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS item (
    id INTEGER PRIMARY KEY,
    itemid TEXT NOT NULL UNIQUE,
    displayname TEXT NOT NULL,
    itemtype TEXT NOT NULL,
    incomeaccount INTEGER NOT NULL REFERENCES account (id),
    isinactive TEXT NOT NULL DEFAULT 'F',
    lastmodifieddate TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS accountingperiod (
    id INTEGER PRIMARY KEY,
    periodname TEXT NOT NULL UNIQUE,
    startdate TEXT NOT NULL,
    enddate TEXT NOT NULL,
    isposting TEXT NOT NULL DEFAULT 'T',
    isquarter TEXT NOT NULL DEFAULT 'F',
    isyear TEXT NOT NULL DEFAULT 'F',
    closed TEXT NOT NULL DEFAULT 'F',
    closedondate TEXT,
    lastmodifieddate TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS customer (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entityid TEXT NOT NULL,
    externalid TEXT UNIQUE,
    companyname TEXT,
    isperson TEXT NOT NULL DEFAULT 'F',
    firstname TEXT,
    lastname TEXT,
    email TEXT,
    phone TEXT,
    comments TEXT,
    subsidiary INTEGER NOT NULL REFERENCES subsidiary (id),
    parent INTEGER REFERENCES customer (id),
    currency INTEGER NOT NULL REFERENCES currency (id),
    terms INTEGER REFERENCES term (id),
    creditlimit NUMERIC,
    creditholdoverride TEXT NOT NULL DEFAULT 'AUTO',
    isinactive TEXT NOT NULL DEFAULT 'F',
    balance NUMERIC NOT NULL DEFAULT 0,
    overduebalance NUMERIC NOT NULL DEFAULT 0,
    datecreated TEXT NOT NULL,
    lastmodifieddate TEXT NOT NULL
);

-- One row per document. type is SuiteQL's short code (CustInvc, CustPymt, CustCred, Journal),
-- recordtype the REST record type name in lower case, as SuiteQL reports it.
CREATE TABLE IF NOT EXISTS "transaction" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    recordtype TEXT NOT NULL,
    tranid TEXT NOT NULL,
    trandate TEXT NOT NULL,
    duedate TEXT,
    entity INTEGER REFERENCES customer (id),
    externalid TEXT,
    currency INTEGER NOT NULL REFERENCES currency (id),
    exchangerate NUMERIC NOT NULL,
    terms INTEGER REFERENCES term (id),
    subsidiary INTEGER NOT NULL REFERENCES subsidiary (id),
    postingperiod INTEGER NOT NULL REFERENCES accountingperiod (id),
    account INTEGER REFERENCES account (id),
    memo TEXT,
    otherrefnum TEXT,
    createdfrom INTEGER,
    status TEXT,
    foreigntotal NUMERIC NOT NULL DEFAULT 0,
    foreignamountpaid NUMERIC NOT NULL DEFAULT 0,
    foreignamountremaining NUMERIC NOT NULL DEFAULT 0,
    foreignpaymentamountused NUMERIC NOT NULL DEFAULT 0,
    foreignpaymentamountunused NUMERIC NOT NULL DEFAULT 0,
    posting TEXT NOT NULL DEFAULT 'T',
    voided TEXT NOT NULL DEFAULT 'F',
    createddate TEXT NOT NULL,
    lastmodifieddate TEXT NOT NULL,
    UNIQUE (type, externalid)
);
CREATE INDEX IF NOT EXISTS transaction_entity ON "transaction" (entity);
CREATE INDEX IF NOT EXISTS transaction_lastmodifieddate ON "transaction" (lastmodifieddate);

-- Line 0 is the main line (mainline = 'T'), as in NetSuite; item and journal lines follow.
CREATE TABLE IF NOT EXISTS transactionline (
    "transaction" INTEGER NOT NULL REFERENCES "transaction" (id) ON DELETE CASCADE,
    id INTEGER NOT NULL,
    linesequencenumber INTEGER NOT NULL,
    mainline TEXT NOT NULL,
    item INTEGER REFERENCES item (id),
    account INTEGER REFERENCES account (id),
    entity INTEGER REFERENCES customer (id),
    quantity NUMERIC,
    rate NUMERIC,
    foreignamount NUMERIC,
    debitforeignamount NUMERIC,
    creditforeignamount NUMERIC,
    description TEXT,
    memo TEXT,
    PRIMARY KEY ("transaction", id)
);

-- The general-ledger impact of each document in the base currency.
CREATE TABLE IF NOT EXISTS transactionaccountingline (
    "transaction" INTEGER NOT NULL REFERENCES "transaction" (id) ON DELETE CASCADE,
    transactionline INTEGER NOT NULL,
    accountingbook INTEGER NOT NULL DEFAULT 1,
    account INTEGER NOT NULL REFERENCES account (id),
    debit NUMERIC,
    credit NUMERIC,
    amount NUMERIC NOT NULL,
    posting TEXT NOT NULL DEFAULT 'T',
    lastmodifieddate TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tal_transaction ON transactionaccountingline ("transaction");

-- Applications of payments and credit memos (nextdoc) to invoices (previousdoc).
CREATE TABLE IF NOT EXISTS nexttransactionlinelink (
    previousdoc INTEGER NOT NULL REFERENCES "transaction" (id),
    previousline INTEGER NOT NULL DEFAULT 0,
    nextdoc INTEGER NOT NULL REFERENCES "transaction" (id) ON DELETE CASCADE,
    nextline INTEGER NOT NULL,
    linktype TEXT NOT NULL,
    foreignamount NUMERIC NOT NULL,
    lastmodifieddate TEXT NOT NULL,
    PRIMARY KEY (nextdoc, nextline)
);
CREATE INDEX IF NOT EXISTS ntll_previousdoc ON nexttransactionlinelink (previousdoc);

CREATE VIEW IF NOT EXISTS previoustransactionlinelink AS
    -- NetSuite exposes the same links under both names, indexed from either end.
    SELECT previousdoc, previousline, nextdoc, nextline, linktype, foreignamount, lastmodifieddate
    FROM nexttransactionlinelink;
