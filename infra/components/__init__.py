"""One construct per capability; ``infra.stack`` only composes them."""
