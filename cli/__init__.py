"""The `gd` command line (CONTRACT.md), one module per group of people who use it.

- `cli.app`: the root `gd` app; every group and top-level command is mounted there, in
  one block (the place to add a group or command from another package);
- `cli.common`: shared options, who acts, errors and exit codes, `execute`;
- `cli.formatting`: how things are shown (pt-BR labels, dates, panels, tables);
- `cli.access`: docs, request, inquiry, apr, analyst, reanalysis, inspection;
- `cli.registrations`: technician, beneficiaries;
- `cli.dev`: dev up, worker; `cli.demo`: the tour.
`gd audit` and `gd report` live with their code, in `audit.cli`.

`starter_cli.py` is the entry point (`gd = "starter_cli:main"`).
"""
