"""Names shared by the moto harness and its environment."""

REGION = "us-east-1"
ACCOUNT = "123456789012"
API_ID = "abc123"
STAGE = "dev"
SIGNING_KEY = "test-signing-key-0123456789abcdef0123456789abcdef"
