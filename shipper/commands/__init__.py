"""The subcommands of `ship`: one module each (`run`, `status`, `validate`), the dbt
build `ship run --build` starts, and the tables they print (`output`)."""
