"""The ``iaprune`` command line: one module per subcommand."""
