"""vehicle_etl: NHTSA's vPIC release → the MVP Platform vehicle catalog (PostgreSQL).

The packages follow the data, top to bottom (docs/ARCHITECTURE.md is the map):

- ``source``   find, restore and open a vPIC source; release names of a source; streamed SELECTs
- ``staging``  COPY into ``vehicles_staging``, derive tables, keys, indexes and grants
- ``quality``  the quality gate: key checks, SQL checks, drift, golden VINs, the GX suite
- ``release``  the swap (a version switch by data), run history, id history, the release diff
- ``serving``  what readers use: VIN decoding, the operator's page, the HTTP API
- ``notify``   alerts and cache invalidation

At the top: ``config`` (settings), ``errors``, ``spec`` (what is read and where it lands),
``releases`` (release names and the rules deciding a run's release), ``platform_db``,
``embedded``, ``pipeline`` (the steps the DAG and the CLI both call), ``airflow_adapter``
(task wrapping for the DAG), ``connections`` (the connection check), ``cli``.

Importing the package imports nothing: the DAG parses with only what its tasks' wiring needs.
"""
