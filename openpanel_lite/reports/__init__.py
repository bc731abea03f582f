"""Backend-neutral reports: each compiles a query description for the store's dialect and shapes rows."""
