# Installed as /etc/profile.d/flocker-docker-host.sh: the user's `docker` goes through the
# Flocker agent (its proxy runs the flocker and weave adapters) while the agent runs.
# An explicit DOCKER_HOST is kept; without the agent's socket, docker talks to dockerd.
if [ -z "${DOCKER_HOST:-}" ] && [ -S /run/flocker/docker.sock ]; then
	DOCKER_HOST=unix:///run/flocker/docker.sock
	export DOCKER_HOST
fi
