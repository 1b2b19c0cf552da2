"""What a run writes: the run file, checkpoints, the XDMF sidecar and the run folder.

Public API (by module):
    run_file     RUN_FILE, RUN_PRODUCTS, load_run, RunData, read_layout, open_run_file (the layout)
    run_writer   RunWriter: run.h5 written (SWMR for live readers), abandoned after a failed write
    run_resume   resume_run_file(...): run.h5 continued from a checkpoint, checked and rewritten
    checkpoint   Checkpoint, write_checkpoint, write_final_checkpoint, read_checkpoint, find_checkpoint, ...
    xdmf         write_xdmf(h5_path)
    export       export_csv, export_vti: the time series as CSV, snapshots as VTK ImageData (.vti)
    run_checks   checked_run, snapshot_time: what a command asks of a run, checked
    run_folder   prepare_run_folder(path, overwrite), resume_run_folder(path), claim_run_folder(...)
    lock         FolderLock(folder), lock_holder(folder): one run writes a folder at a time
    safe_files   write_file, replaced, fsync_path: written beside, renamed, never through a link
"""
