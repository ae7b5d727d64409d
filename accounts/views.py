from django.contrib.auth import login
from django.shortcuts import redirect, render

from . import signup as signup_policy
from .forms import SignUpForm


def signup(request):
    if request.user.is_authenticated:
        return redirect("dashboard")
    mode = signup_policy.mode()
    token = request.GET.get("invite") or request.POST.get("invite") or ""
    invited = signup_policy.invited_email(token) if token else None
    if mode == "closed" or (mode == "invite" and invited is None):
        reason = (
            "This invitation link is not valid any more: ask for a new one."
            if token
            else "Accounts on this server are made by its operator: ask them for one."
        )
        return render(request, "accounts/signup_closed.html", {"reason": reason}, status=403)
    form = SignUpForm(request.POST or None, initial={"email": invited} if invited else None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("dashboard")
    return render(request, "accounts/signup.html", {"form": form, "invite": token})
