"""Teaching: each stage's recipe (its fixtures), demos that narrate a recipe, the student workbook, the
stage runner and its verdicts, and the doctor. Built on the layers below."""
