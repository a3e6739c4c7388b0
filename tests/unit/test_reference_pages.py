"""The generated reference pages match the code: a new command, option or configuration key
without `make docs` fails here."""

from revbridge.cli.reference import CLI_PAGE, CONFIG_PAGE, cli_reference, config_reference


def test_the_command_reference_is_current() -> None:
    """docs/reference/cli.md lists exactly the commands and options the CLI has."""
    assert CLI_PAGE.read_text(encoding="utf-8") == cli_reference(), "run `make docs`"


def test_the_configuration_reference_is_current() -> None:
    """docs/reference/configuration.md lists exactly the keys revbridge.toml accepts."""
    assert CONFIG_PAGE.read_text(encoding="utf-8") == config_reference(), "run `make docs`"
