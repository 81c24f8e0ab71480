"""finefcace.course.evaluation: which paper table our results sit beside."""

from __future__ import annotations

from finefcace.course import evaluation


def test_paper_table_for_each_dataset_and_task():
    assert evaluation.paper_table_key("synthetic") == ("table2", None)
    assert evaluation.paper_table_key("fairface", "densenet121") == ("table9", None)
    assert evaluation.paper_table_key("utkface") == ("table3", "UTKFace")
    assert evaluation.paper_table_key("lfwa") == ("table3", "LFWA+")
    assert evaluation.paper_table_key("celeba") == ("table4", None)
    assert evaluation.paper_table_key("celeba", "resnet50", "Smiling") == ("table6", None)
