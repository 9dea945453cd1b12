# -*- Python -*-
# GoogleTest binaries under build/unittests, run by lit so that check-qwen
# reports them with the lit tests.
import os

import lit.formats

config.name = "QWEN-Unit"
config.suffixes = []
config.test_source_root = os.path.join(config.qwen_obj_root, "unittests")
config.test_exec_root = config.test_source_root
config.test_format = lit.formats.GoogleTest(".", "Tests")
