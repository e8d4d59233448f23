import pytest

from apps.billing.models import Plan
from apps.billing.services import default_plan


@pytest.fixture(autouse=True)
def _accounts_start_at_zero(request):
    """New accounts here get no plan grant, so each test states every movement it expects."""
    if request.node.get_closest_marker("django_db") is None:
        yield
        return
    request.getfixturevalue("_django_db_helper")
    Plan.objects.filter(pk=default_plan().pk).update(monthly_grant=0)
    yield
