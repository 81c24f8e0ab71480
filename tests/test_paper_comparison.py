"""finefcace.paper_comparison: which paper table our results sit beside."""

from __future__ import annotations

from finefcace import paper_comparison


def test_paper_table_for_each_dataset_and_task():
    assert paper_comparison.paper_table_key("synthetic") == ("table2", None)
    assert paper_comparison.paper_table_key("fairface", "densenet121") == ("table9", None)
    assert paper_comparison.paper_table_key("utkface") == ("table3", "UTKFace")
    assert paper_comparison.paper_table_key("lfwa") == ("table3", "LFWA+")
    assert paper_comparison.paper_table_key("celeba") == ("table4", None)
    assert paper_comparison.paper_table_key("celeba", "resnet50", "Smiling") == ("table6", None)
