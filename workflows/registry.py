"""Every workflow the worker registers (kept out of the package __init__, which the
sandbox imports for every workflow run)."""

from workflows.access_request import AccessRequestWorkflow
from workflows.beneficiaries import BeneficiaryRegistrationWorkflow
from workflows.email_change import TechnicianEmailChangeWorkflow
from workflows.technician import TechnicianRegistrationWorkflow
from workflows.webhooks import WebhookSubscriptionWorkflow

ALL_WORKFLOWS = (
    AccessRequestWorkflow,
    TechnicianRegistrationWorkflow,
    BeneficiaryRegistrationWorkflow,
    TechnicianEmailChangeWorkflow,
    WebhookSubscriptionWorkflow,
)
