"""Knowledge distillation: teacher, transfer set, teacher cache, baseline and bias checks."""
