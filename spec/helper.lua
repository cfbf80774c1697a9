-- SPDX-License-Identifier: MIT
-- Minimal busted helper for the conformance worktree: .busted names this file
-- and busted refuses to run without it. The main tree has its own, fuller one.
package.path = "spec/?.lua;" .. package.path
