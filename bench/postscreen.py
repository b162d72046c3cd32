"""A private Postfix postscreen for the benchmark (bench/bench.py).

Reuses tests/integration/postfix.py (PrivatePostfix: a throwaway instance
under a temporary folder, never /etc/postfix) and replaces its master.cf:

    127.0.0.1:PORT       inet n - n - 1 postscreen   (the front end)
    smtpd                pass - - n - N smtpd        (behind postscreen)
    dnsblog              unix - - n - 0 dnsblog
    127.0.0.1:PLAIN_PORT inet n - n - N smtpd        (the MTA alone)

configured as NOTES.md says a fair comparison needs: postscreen_dnsbl_sites
on the benchmark's zone, postscreen_dnsbl_action = enforce, an empty
postscreen_access_list (Debian's permit_mynetworks would let every loopback
client skip the tests), an empty postscreen_greet_banner (no pre-greet wait)
and every queue/connection limit raised so that none is the bottleneck.

Postfix's resolver reads /etc/resolv.conf: bench.py runs everything in a
private network + mount namespace with a bind-mounted resolv.conf that
points at rbldnsd on 127.0.0.1:53 inside that namespace.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from postfix import PrivatePostfix, PostfixError  # noqa: E402

__all__ = ["PrivatePostscreen", "PostfixError"]


class PrivatePostscreen(PrivatePostfix):
    def __init__(self, port, plain_port, dnsbl_sites="bl.test",
                 smtpd_maxproc=1000, domain="example.org", base_dir=None):
        extra = {
            "postscreen_dnsbl_sites": dnsbl_sites,
            "postscreen_dnsbl_threshold": "1",
            "postscreen_dnsbl_action": "enforce",
            "postscreen_access_list": "",
            "postscreen_greet_banner": "",
            "postscreen_blacklist_action": "ignore",
            # Limits raised so none of them is the bottleneck.
            "postscreen_client_connection_count_limit": "100000",
            "smtpd_client_connection_count_limit": "0",
            "postscreen_pre_queue_limit": "100000",
            "postscreen_post_queue_limit": "100000",
            # Also the listen backlog of the inet services (Postfix uses
            # max(maxproc, default_process_limit)); the smtpd services have
            # their own explicit process limit below.
            "default_process_limit": "4096",
            # Idle holders of the memory figure must not be timed out.
            "postscreen_command_time_limit": "900s",
            "smtpd_timeout": "900s",
            "in_flow_delay": "0s",
            "smtpd_peername_lookup": "no",
        }
        super().__init__(port=port, proxy_protocol="", domain=domain,
                         plain_service=False, base_dir=base_dir,
                         extra_main=extra)
        self.plain_port = plain_port
        self.smtpd_maxproc = smtpd_maxproc

    def master_cf(self):
        base = super().master_cf()
        tail = base[base.index("cleanup "):]
        n = self.smtpd_maxproc
        head = (
            "127.0.0.1:%d inet n - n - 1 postscreen\n"
            "  -o syslog_name=postfix-bench/postscreen\n"
            "smtpd      pass - - n - %d smtpd\n"
            "  -o syslog_name=postfix-bench/smtpd\n"
            "dnsblog    unix - - n - 0 dnsblog\n"
            "127.0.0.1:%d inet n - n - %d smtpd\n"
            "  -o syslog_name=postfix-bench/plain\n"
            % (self.port, n, self.plain_port, n))
        return head + tail

    def _wait_listening(self):
        # Both inet services must listen (plain_service is False in the
        # parent, so check the plain port here too).
        super()._wait_listening()
        import time
        deadline = time.monotonic() + self.start_timeout
        while not self._listening(self.plain_port):
            if time.monotonic() > deadline:
                raise PostfixError("plain smtpd not listening on %d"
                                   % self.plain_port)
            time.sleep(0.05)
