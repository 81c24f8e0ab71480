"""What the course's notebooks call, one module per chapter, and nothing the library needs.

:mod:`~finefcace.course.session` (every notebook's ``start()`` and the runs chapters 03-06
share), :mod:`~finefcace.course.parameters` (the parameter check),
:mod:`~finefcace.course.dataset_preparation` (01), :mod:`~finefcace.course.experts` (02),
:mod:`~finefcace.course.attention_crop` (03), :mod:`~finefcace.course.training` (04),
:mod:`~finefcace.course.evaluation` (05), :mod:`~finefcace.course.ablations` (06) and
:mod:`~finefcace.course.paper_results` (the paper's printed tables). The course sits on top:
it imports the method, the data and the training engine; none of them imports it.
"""
