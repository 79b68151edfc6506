"""The jobs behind the command line: `train` (`tfbin train`) and `plots` (its pictures).

The library (`tfbin.*` outside this package) never imports a job."""
