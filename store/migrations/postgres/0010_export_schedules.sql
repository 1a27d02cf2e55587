-- Scheduled exports: a schedule of kind `export` names the export profile it runs, and
-- so does each of its runs (the profile's latest revision when the run is planned).

ALTER TABLE schedules ADD COLUMN profile TEXT;
ALTER TABLE runs ADD COLUMN profile TEXT;
