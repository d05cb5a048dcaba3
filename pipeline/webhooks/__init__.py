"""Job webhooks: endpoints a tenant registers, Standard Webhooks signing, and the delivery log."""

from pipeline.webhooks.deliveries import DeliveryPolicy, claim, due_deliveries, record_attempt, send_claimed
from pipeline.webhooks.endpoints import add_endpoint, endpoint_record, find_endpoint, list_endpoints
from pipeline.webhooks.signing import new_secret, sign, signed_headers

__all__ = [
    "DeliveryPolicy",
    "add_endpoint",
    "claim",
    "due_deliveries",
    "endpoint_record",
    "find_endpoint",
    "list_endpoints",
    "new_secret",
    "record_attempt",
    "send_claimed",
    "sign",
    "signed_headers",
]
