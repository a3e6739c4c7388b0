"""The pure core: canonical events, money, journals, policy. No I/O, no clock, no logging."""
