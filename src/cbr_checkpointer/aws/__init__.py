"""AWS without boto3: SigV4 signing and the AWS JSON protocol over the package's HTTP layer (h11)."""

from cbr_checkpointer.aws.api import AwsJsonApi
from cbr_checkpointer.aws.client import JSON_SERVICES, AwsError, AwsJsonClient, aws_json_client
from cbr_checkpointer.aws.sigv4 import AwsCredentials, SigV4Signer, sign

__all__ = [
    "JSON_SERVICES",
    "AwsCredentials",
    "AwsError",
    "AwsJsonApi",
    "AwsJsonClient",
    "SigV4Signer",
    "aws_json_client",
    "sign",
]
