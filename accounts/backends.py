"""Login throttling: django-axes counts wrong passwords per username and address and refuses
logins for a while after FLOWS_LOGIN_FAILURE_LIMIT of them (settings.AXES_*)."""

from axes.backends import AxesStandaloneBackend


class LoginThrottleBackend(AxesStandaloneBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        # Throttling is about requests from the network; a login without one (the shell, a
        # management command, the test client's login()) has no address to count against.
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
