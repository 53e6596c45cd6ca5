"""The finance UI's pages, one module per page family."""
