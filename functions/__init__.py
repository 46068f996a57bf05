"""Lambda code of the gateway: handlers (entry points) -> logic (rules) -> dal (AWS)."""
