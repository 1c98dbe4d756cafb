"""Every table of BestChat. Importing this package registers them all on ``Base.metadata``."""

from bestchat.models.audit import AuditLog
from bestchat.models.base import Base
from bestchat.models.billing import Plan, StripeEvent, Subscription
from bestchat.models.chat import Conversation, Message
from bestchat.models.context import ContextOptimization
from bestchat.models.files import FileUpload
from bestchat.models.groups import Group, GroupMember
from bestchat.models.limits import UserLimits
from bestchat.models.prices import ModelPrice
from bestchat.models.providers import ProviderConfig
from bestchat.models.site import Invite, SiteSetting
from bestchat.models.tools import AutoApprovalSetting, ToolExecution
from bestchat.models.usage import UsageLog
from bestchat.models.users import ApiToken, User

__all__ = [
    "ApiToken", "AuditLog", "AutoApprovalSetting", "Base", "ContextOptimization", "Conversation",
    "FileUpload", "Group", "GroupMember", "Invite", "Message", "ModelPrice", "Plan", "ProviderConfig",
    "SiteSetting", "StripeEvent", "Subscription", "ToolExecution", "UsageLog", "User", "UserLimits",
]
