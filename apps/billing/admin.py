from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from apps.billing import services
from apps.billing.models import (
    MICRO,
    CreditAccount,
    CreditTransaction,
    ModelPrice,
    Plan,
    Subscription,
    UnitPrice,
    credits,
)


class GrantForm(forms.Form):
    amount = forms.DecimalField(
        label=_("Credits"), max_digits=18, decimal_places=6, min_value=0.000001, help_text=_("Added to each account.")
    )
    reason = forms.CharField(label=_("Reason"), max_length=200)

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount > settings.BILLING_MAX_MOVEMENT_CREDITS:
            raise forms.ValidationError(
                _("At most %(most)s credits at once.") % {"most": settings.BILLING_MAX_MOVEMENT_CREDITS}
            )
        return amount


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    """Balances, read-only: they change only through ledger rows (grant credits with the action)."""

    list_display = ["user", "balance_credits", "updated_at"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]
    readonly_fields = ["user", "balance", "updated_at"]
    actions = ["grant_credits"]

    @admin.display(description=_("balance (credits)"), ordering="balance")
    def balance_credits(self, account: CreditAccount) -> str:
        return credits(account.balance)

    @admin.action(description=_("Grant credits to the selected accounts"), permissions=["change"])
    def grant_credits(self, request: HttpRequest, queryset: QuerySet[CreditAccount]) -> HttpResponse | None:
        form = GrantForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            amount, reason = int(form.cleaned_data["amount"] * MICRO), form.cleaned_data["reason"]
            accounts = list(queryset.select_related("user"))
            for account in accounts:
                services.operator_grant(user=account.user, amount=amount, reason=reason, actor=request.user)
            done = _("Granted %(credits)s credits to %(count)d account(s).") % {
                "credits": credits(amount),
                "count": len(accounts),
            }
            self.message_user(request, done, messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "admin/billing/grant_credits.html",
            {**self.admin_site.each_context(request), "form": form, "accounts": queryset, "title": _("Grant credits")},
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CreditAccount | None = None) -> bool:
        return False


@admin.register(CreditTransaction)
class CreditTransactionAdmin(admin.ModelAdmin):
    """The ledger, read-only: corrections are new rows."""

    list_display = [
        "created_at",
        "user",
        "kind",
        "amount_credits",
        "balance_after_credits",
        "execution",
        "description",
        "fallback_price",
    ]
    # "Fallback price": charges for a model without a price; give it one in Model prices.
    list_filter = ["kind", "fallback_price", "created_at"]
    search_fields = ["user__username", "idempotency_key", "description"]
    list_select_related = ["user", "execution"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = [field.name for field in CreditTransaction._meta.fields]

    @admin.display(description=_("amount (credits)"), ordering="amount")
    def amount_credits(self, row: CreditTransaction) -> str:
        return credits(row.amount)

    @admin.display(description=_("balance after"))
    def balance_after_credits(self, row: CreditTransaction) -> str:
        return credits(row.balance_after)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CreditTransaction | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CreditTransaction | None = None) -> bool:
        return False


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ["provider", "model", "input_per_million", "output_per_million", "effective_from", "effective_to"]
    list_filter = ["provider"]
    search_fields = ["provider", "model"]


@admin.register(UnitPrice)
class UnitPriceAdmin(admin.ModelAdmin):
    list_display = ["subject", "name", "per_call", "per_minute"]
    list_filter = ["subject"]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "grant_credits", "max_concurrent_runs", "max_runs_per_day", "max_run_seconds", "is_default"]
    list_filter = ["is_default"]

    @admin.display(description=_("credits per period"), ordering="monthly_grant")
    def grant_credits(self, plan: Plan) -> str:
        return credits(plan.monthly_grant)


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["user", "plan", "period_start", "period_end"]
    list_filter = ["plan"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user", "plan"]
    autocomplete_fields = ["user"]
    readonly_fields = ["period_start", "period_end"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # every user gets one when the account is created
