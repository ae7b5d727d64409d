from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from flows.models import Flow


def home(request):
    if request.user.is_authenticated:
        return redirect("dashboard")
    return render(request, "web/home.html")


@login_required
def dashboard(request):
    flows = Flow.objects.owned_by(request.user)
    return render(request, "web/dashboard.html", {"flows": flows})
