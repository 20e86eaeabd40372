"""The Huawei side: CBR's wire format and errors, SDK-HMAC-SHA256 signing and IAM tokens, over HTTP."""

from cbr_checkpointer.cbr.client import CbrClient
from cbr_checkpointer.cbr.credentials import (
    AkSkCredentials,
    CredentialsProvider,
    PasswordCredentials,
    StaticCredentials,
)
from cbr_checkpointer.cbr.errors import (
    ERROR_CODES,
    CbrError,
    ErrorRule,
    classify_response,
    classify_transport_error,
)
from cbr_checkpointer.cbr.iam import TokenIssuer
from cbr_checkpointer.cbr.regional import RegionalCbr
from cbr_checkpointer.cbr.signer import AkSkSigner, sign

__all__ = [
    "ERROR_CODES",
    "AkSkCredentials",
    "AkSkSigner",
    "CbrClient",
    "CbrError",
    "CredentialsProvider",
    "ErrorRule",
    "PasswordCredentials",
    "RegionalCbr",
    "StaticCredentials",
    "TokenIssuer",
    "classify_response",
    "classify_transport_error",
    "sign",
]
