from revbridge.core.wording import counted


def test_a_count_agrees_with_its_noun() -> None:
    assert counted(1, "item") == "1 item"
    assert counted(2, "item") == "2 items"
    assert counted(0, "item") == "0 items"
    assert counted(1, "delivery", "deliveries") == "1 delivery"
    assert counted(12, "delivery", "deliveries") == "12 deliveries"
