# `make help`, per makefile: its title (its first comment line), its targets with their `##` text,
# then its knobs (`?=` variables) with their current values. Included by the Makefile.

define NEWLINE


endef
INDENT := $(subst x,,x    x)
HELP_SECTION = $(info )$(info $(shell sed -n '1s/^# *//p' $(1)))$(info $(subst @@,$(NEWLINE),$(shell \
	awk -F':.*## ' '/^[a-z][a-z-]*:.*## /{printf "  make %-16s %s@@", $$1, $$2}' $(1))))$(info \
	$(INDENT)variables:)$(foreach v,$(shell sed -nE 's/^([A-Z][A-Z0-9_]*) *\?=.*/\1/p' $(1) | awk '!seen[$$0]++'),$(info \
	$(INDENT)$(INDENT)$(v) = $($(v))))
