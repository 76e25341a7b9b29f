/*
 * outputs.h - a task's dataset outputs registered as datasets of this node,
 * so that a later task or job can name them by dataset_id.
 *
 * When a t_task row of this node ends SUCCESS with exit code 0, each of its
 * outputs that the component's description declares a dataset (outputData
 * category dataset, training_set or test_set) and that the container left
 * at <storage>/<namespace>/<name>/data becomes a t_dataset row:
 *
 *   namespace  the output address's namespace as the task environment gave
 *              it (the job id: scheduler/dag.c)
 *   name       its name (<task name>.<output key>.<role>.<index>)
 *   uri        file://<storage>/<namespace>/<name>/data
 *   size       the file's size when registered
 *   sha256     computed afterwards, 1 MiB per loop turn (as uploads are)
 *   meta       {source: "task", job_id, task_id, task_name, role,
 *               role_index, output}
 *
 * So dataset_id "<job_id>#<task>.<key>.<role>.<index>".  An output that is
 * absent (a PSI party that gets no result writes none), not a regular file,
 * or reached through a symbolic link is not registered; an existing
 * dataset of that name is never replaced.  Files are opened component by
 * component with O_NOFOLLOW under the storage root.
 *
 * Loop-thread only.
 */
#ifndef GW_SCHEDULER_OUTPUTS_H
#define GW_SCHEDULER_OUTPUTS_H

struct event_base;
struct outputs;
struct store;

/** base and st are borrowed for the object's life; storage_dir (absolute)
 *  is copied.  Never NULL. */
struct outputs *outputs_new(struct event_base *base, struct store *st, const char *storage_dir);

/** Stop every registration in progress (open files, hashing) and free.
 *  Database calls still pending must be dropped by the pool (db_pool_free)
 *  before the loop runs again.  NULL-safe. */
void outputs_free(struct outputs *o);

/** A t_task row of job_id/task_id changed: register the outputs of rows
 *  that have now ended in success (a repeat registers nothing twice). */
void outputs_task_changed(struct outputs *o, const char *job_id, const char *task_id);

#endif
