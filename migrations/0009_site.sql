-- 0009_site.sql - one database per node.  The first gateway to start on the
-- database records its node id; a gateway with another node id refuses to
-- start on it (LESSONS.md #7: two nodes sharing tables would mix their
-- jobs, tasks and keys).  An operator who really renames the node updates
-- this row by hand.
CREATE TABLE t_site (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    node_id    bfia_id NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
