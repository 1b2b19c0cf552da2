"""Static fields: vessel maps, tumour shapes, arrays from files, and their evaluation.

Public API:
    StaticFields, build_static_fields(model, grid, dtype)      (solver/fields/static.py)
    vessel_map(shape, spacing, kind, seed, **options)         (solver/fields/vessels.py)
    tumour_density(shape, spacing, kind, density, **options)  (solver/fields/tumour_shapes.py)
    read_array(path, shape, dataset)                          (solver/fields/array_files.py)

The generators (vessels, tumour_shapes, array_files) know only the grid; static.py
evaluates a model's sources with them.
"""
