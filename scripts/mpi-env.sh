# Sourced by the scripts: what Open MPI needs to run here.
# - As root (CI, containers) mpirun refuses to start without these two variables.
# - With no ssh/rsh on the machine, a single-node launch needs the isolated launcher.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
command -v ssh >/dev/null || command -v rsh >/dev/null || export OMPI_MCA_plm=isolated
