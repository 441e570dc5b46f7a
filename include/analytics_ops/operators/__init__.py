"""Custom operators: thin execute() methods over the plain functions of the package."""
