"""The user's own reminders in the web application."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from edc import bounds
from edc.notifications import notifications_for, notifications_mark_read, unread_count


@login_required
def notifications(request: HttpRequest) -> HttpResponse:
    """GET: the user's notifications, newest first. POST: mark one (``pk``) or all read."""
    if request.method == "POST":
        notifications_mark_read(user=request.user, pk=bounds.id_param(request.POST.get("pk")))
        return redirect("notifications")
    items = notifications_for(request.user)[:200]
    return render(request, "edc/notifications.html", {"notifications": items,
                                                        "unread": unread_count(request.user)})
