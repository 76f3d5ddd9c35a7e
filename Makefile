# faultline — build the image, run the demo cluster, run the tests.
#
#   make demo    a live 5-node chat cluster you can chat on and break
#   make test    the one test command (CI runs it through .ci/run)
#   make help    everything else

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

IMAGE        ?= faultline/chat-node:latest
RUST_TARGET  := x86_64-unknown-linux-gnu
# The static-pie node binary. The explicit --target keeps proc-macros and build scripts dynamic.
BINARY       := target/$(RUST_TARGET)/release/chat-node
STATIC_FLAGS := -C target-feature=+crt-static
# The image is built from this directory alone (Dockerfile + binary), not from the whole repo.
IMAGE_CTX    := target/image-context
IMAGE_STAMP  := $(IMAGE_CTX)/.image-built

DEMO_PROJECT := faultline-demo
DEMO_FILE    := compose/docker-compose.yml
DEMO_NETWORK := faultline-demo-net
DEMO_LABEL   := faultline.demo=1
# How long `make demo` waits for discovery and an elected leader before it gives up.
DEMO_TIMEOUT ?= 30

# `docker compose` (v2 plugin) when present, else `docker-compose` (v1); the file is format 2.4.
COMPOSE_CMD := $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; \
                 elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)
COMPOSE      = FAULTLINE_IMAGE=$(IMAGE) $(COMPOSE_CMD) -p $(DEMO_PROJECT) -f $(DEMO_FILE)

# The chat user for `make chat USER=alice` (defaults to your login name).
USER ?= guest
NODE ?=

##@ Demo cluster

# The demo cluster's secret: made once (random, 0600) and kept, so restarted nodes still share
# it; the compose file mounts it into every node. Delete it (and `make demo-down`) for a new one.
DEMO_SECRET  := compose/.cluster-secret

$(DEMO_SECRET):
	@umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >$@
	@echo "==> generated the demo's cluster secret in $@ (gitignored; every node reads it)"

.PHONY: demo
demo: image need-compose $(DEMO_SECRET) ## Start 5 nodes, wait for a leader, print the cluster table and what to try
	@echo "==> starting the demo cluster ($(COMPOSE_CMD))"
	@$(COMPOSE) up -d --no-build
	@scripts/demo-state.sh wait $(DEMO_TIMEOUT)
	@scripts/demo-state.sh table
	@scripts/demo-state.sh next-steps

.PHONY: state
state: ## Print the cluster table again (node, address, role, epoch, leader)
	@scripts/demo-state.sh table

.PHONY: chat
chat: ## An interactive client on the demo network: make chat USER=alice (asks for the password; or CHAT_PASSWORD=...)
	@docker network inspect $(DEMO_NETWORK) >/dev/null 2>&1 || { echo "the demo is not running: make demo" >&2; exit 1; }
	@tty=$$([ -t 0 ] && echo -it || echo -i); \
	  docker run --rm $$tty --network $(DEMO_NETWORK) --label $(DEMO_LABEL) -e CHAT_PASSWORD -e CHAT_ASSIGNED $(IMAGE) client --user $(USER)

.PHONY: kill-leader
kill-leader: ## SIGKILL the current leader (a crash, not a graceful stop)
	@leader="$$(scripts/demo-state.sh leader)"; \
	  echo "==> docker kill $$leader (SIGKILL)"; docker kill "$$leader" >/dev/null; \
	  echo "now: make state   (a new leader within about a second; bring it back: make restart NODE=$${leader##*-n})"

.PHONY: pause
pause: need-node ## Freeze a node (docker pause): make pause NODE=3
	@docker pause $(DEMO_PROJECT)-n$(NODE) >/dev/null && echo "==> paused $(DEMO_PROJECT)-n$(NODE); wake it: make resume NODE=$(NODE)"

.PHONY: resume
resume: need-node ## Unfreeze a paused node: make resume NODE=3
	@docker unpause $(DEMO_PROJECT)-n$(NODE) >/dev/null && echo "==> resumed $(DEMO_PROJECT)-n$(NODE); see: make state"

.PHONY: restart
restart: need-node ## Start a killed node again, or restart a running one: make restart NODE=3
	@c=$(DEMO_PROJECT)-n$(NODE); status="$$(docker inspect -f '{{.State.Status}}' $$c)"; \
	  case "$$status" in \
	    paused) docker unpause $$c >/dev/null; docker restart -t 3 $$c >/dev/null ;; \
	    running) docker restart -t 3 $$c >/dev/null ;; \
	    *) docker start $$c >/dev/null ;; \
	  esac; echo "==> $$c was $$status, started again (same id, address and data); see: make state"

.PHONY: logs
logs: need-compose ## Follow the nodes' JSON event lines (Ctrl-C to stop)
	@$(COMPOSE) logs -f --tail=20

.PHONY: demo-down
demo-down: need-compose ## Remove the demo's containers and network (nothing else)
	@ids="$$(docker ps -aq --filter label=$(DEMO_LABEL))"; [ -z "$$ids" ] || docker rm -f $$ids >/dev/null
	@$(COMPOSE) down --remove-orphans
	@docker network ls -q --filter label=$(DEMO_LABEL) | xargs -r docker network rm >/dev/null
	@echo "==> demo removed (the image $(IMAGE) stays; make clean removes it)"

##@ Build

.PHONY: image
image: ## Build the static chat-node binary and the FROM scratch image (only when it changed)
	@scripts/require-docker.sh
	@docker image inspect $(IMAGE) >/dev/null 2>&1 || rm -f $(IMAGE_STAMP)
	@$(MAKE) $(IMAGE_STAMP)
	@echo "==> $(IMAGE): $$(docker image inspect -f '{{.Size}}' $(IMAGE) | numfmt --to=iec) (one static binary, no base image)"

# cargo decides whether the binary is stale; make then compares its mtime with the copy's.
$(BINARY): FORCE
	@RUSTFLAGS='$(STATIC_FLAGS)' cargo build --release --target $(RUST_TARGET) -p chat-node
	@ldd $(BINARY) 2>&1 | grep -q 'statically linked' || { echo "error: $(BINARY) is not statically linked" >&2; exit 1; }

$(IMAGE_CTX)/chat-node: $(BINARY)
	@mkdir -p $(IMAGE_CTX)
	@cp $(BINARY) $@

$(IMAGE_CTX)/Dockerfile: Dockerfile
	@mkdir -p $(IMAGE_CTX)
	@cp Dockerfile $@

$(IMAGE_STAMP): $(IMAGE_CTX)/chat-node $(IMAGE_CTX)/Dockerfile
	@echo "==> docker build -t $(IMAGE) $(IMAGE_CTX)"
	@# Quiet on success (no legacy-builder chatter); everything docker said on failure. The
	@# previous build is removed once untagged (it stays while a container still uses it).
	@old="$$(docker image inspect -f '{{.Id}}' $(IMAGE) 2>/dev/null || true)"; \
	  if ! out="$$(docker build -q -t $(IMAGE) $(IMAGE_CTX) 2>&1)"; then echo "$$out" >&2; exit 1; fi; \
	  if [ -n "$$old" ] && [ "$$old" != "$$(docker image inspect -f '{{.Id}}' $(IMAGE))" ]; then \
	    docker image rm "$$old" >/dev/null 2>&1 || true; \
	  fi
	@touch $@

.PHONY: build
build: ## cargo build the workspace (debug)
	cargo build --workspace

##@ Test

.PHONY: test
# The image is built before cargo test so that the harness's Docker integration tests run
# against it instead of skipping for want of an image.
test: ## THE test command: fmt, clippy, image, cargo test, netns smoke, scenario suite, report in a browser
	@scripts/test-prereqs.sh
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	@$(MAKE) image
	cargo test --workspace
	@$(MAKE) netns-smoke
	@$(MAKE) scenarios
	@$(MAKE) browser-test
	@$(MAKE) chaos SEEDS=2 FIRST=2 DURATION=15s CHAOS_OUT=runs/chaos-smoke

.PHONY: browser-test
browser-test: ## Render runs/suite/leader-crash/report.html in headless Chromium and check it
	@scripts/browser-test.sh runs/suite/leader-crash

.PHONY: netns-smoke
netns-smoke: ## Real network without Docker: 3 servers + 2 users in network namespaces, leader SIGKILLed (root)
	@scripts/netns-cluster.sh

.PHONY: scenarios
scenarios: ## Run every scenario in scenarios/ against the image (the harness)
	@scripts/run-scenarios.sh $(IMAGE)

SEEDS    ?= 10
FIRST    ?= 1
DURATION ?= 30s
CHAOS_OUT ?= runs/chaos
.PHONY: chaos
chaos: ## Random faults from seeds FIRST..FIRST+SEEDS-1, DURATION each, then heal: make chaos SEEDS=20 DURATION=60s
	@CHAOS_OUT=$(CHAOS_OUT) scripts/chaos.sh $(IMAGE) $(SEEDS) $(DURATION) $(FIRST)

.PHONY: bench
bench: image ## The standard benchmark set (harness bench: 256 outstanding, then 1,000 msg/s open loop) into runs/bench-*
	cargo build --release -p harness
	target/release/harness bench --image $(IMAGE) --outstanding 256 --duration 20s --out runs/bench-256
	target/release/harness bench --image $(IMAGE) --rate 1000 --duration 20s --out runs/bench-rate-1000

.PHONY: clean
# Harness leftovers are not touched here: `harness clean` removes every run's containers,
# including those of a run still going on in another terminal.
clean: ## Remove build output, run reports, the demo and the image
	@if docker info >/dev/null 2>&1; then \
	  $(MAKE) demo-down; \
	  docker image rm -f $(IMAGE) >/dev/null 2>&1 || true; \
	fi
	cargo clean
	rm -rf runs

##@ Help

.PHONY: help
help: ## This list
	@awk 'BEGIN {FS = ":.*## "} \
	  /^##@/ {printf "\n%s\n", substr($$0, 5)} \
	  /^[a-zA-Z_-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo

# ---- guards -------------------------------------------------------------------------------

.PHONY: need-compose
need-compose:
	@scripts/require-docker.sh
	@[ -n "$(COMPOSE_CMD)" ] || { echo "error: neither 'docker compose' nor 'docker-compose' is installed" >&2; exit 1; }

.PHONY: need-node
need-node:
	@case "$(NODE)" in [1-5]) ;; *) echo "error: say which node, 1 to 5: make $(MAKECMDGOALS) NODE=3" >&2; exit 1 ;; esac

.PHONY: FORCE
FORCE:
