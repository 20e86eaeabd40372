"""The one Logger and Metrics of the function, shared by every module (Powertools)."""

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="cbr-checkpointer")
metrics = Metrics(namespace="CbrCheckpointer", service="cbr-checkpointer")
