"""Business rules of the gateway. Knows no boto3 and no event shapes; talks to ports."""
