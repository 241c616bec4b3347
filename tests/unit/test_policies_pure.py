"""The policies package is pure: importing and rendering it never loads pulumi."""

import subprocess
import sys


def test_policies_never_import_pulumi(project_root):
    code = (
        "import sys, policies, policies.traffic, policies.policy_set\n"
        "from policies import *\n"
        "assert not any(m == 'pulumi' or m.startswith('pulumi.') for m in sys.modules), "
        "sorted(m for m in sys.modules if m.startswith('pulumi'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=project_root)
