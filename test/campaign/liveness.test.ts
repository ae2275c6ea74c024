/**
 * A campaign whose owner process is gone (kill -9) is shown as interrupted, with the dead pid, by
 * `campaign status` and `campaign list` (text and --json) — through the built CLI on a real manifest.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { liveness } from '../../src/campaign/liveness.js';
import type { CampaignSettings } from '../../src/config/campaign.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { systemClock } from '../../src/util/clock.js';
import { lem, tempDir } from '../helpers/cli.js';

const settings: CampaignSettings = { cycles: 1, structure: 'interleaved', seed: 1, thermal_gap: 0, runtime: 'local', force_cold_start: false, retries: 0, keep_services: false };

/** A pid that was alive and now is not (a process we started and killed). */
async function deadPid(): Promise<number> {
  const p = spawn('sleep', ['30']);
  const pid = p.pid ?? 0;
  p.kill('SIGKILL');
  await new Promise((r) => p.once('exit', r));
  return pid;
}

function stateWithClaimedCampaign(id: string, pid: number): string {
  const state = tempDir('lem-liveness-');
  const m = Manifest.open(join(state, 'lem.db'), systemClock);
  try {
    const config = ExperimentConfig.parse({ backend: 'calibration' });
    m.createCampaign({ id, name: 'c', sourcePath: 'c.yaml', settings, notes: [], experiments: [{ id: 'e1', name: 'e1', backend: 'calibration', config }], runs: [{ position: 0, experimentId: 'e1', cycle: 1 }] });
    m.claim(id, pid);
  } finally {
    m.close();
  }
  return state;
}

describe('a campaign whose owner process is gone', () => {
  it('liveness: running with a dead local owner → interrupted; live, remote or not running → as recorded', () => {
    const probe = { host: 'here', alive: (pid: number) => pid === 1 };
    expect(liveness({ status: 'running', ownerPid: 4242, ownerHost: 'here' }, probe)).toEqual({ status: 'interrupted', deadOwnerPid: 4242 });
    expect(liveness({ status: 'running', ownerPid: 1, ownerHost: 'here' }, probe)).toEqual({ status: 'running', deadOwnerPid: null });
    expect(liveness({ status: 'running', ownerPid: 4242, ownerHost: 'elsewhere' }, probe)).toEqual({ status: 'running', deadOwnerPid: null });
    expect(liveness({ status: 'completed', ownerPid: null, ownerHost: null }, probe)).toEqual({ status: 'completed', deadOwnerPid: null });
  });

  it('campaign status and list show it interrupted with the dead pid (text and --json)', async () => {
    const pid = await deadPid();
    const state = stateWithClaimedCampaign('dead-owner-1', pid);

    const status = lem(['--state', state, 'campaign', 'status', 'dead-owner-1', '--json']);
    expect(status.code, status.stderr).toBe(0);
    const s = JSON.parse(status.stdout) as { status: string; owner_pid: number; dead_owner_pid: number | null };
    expect(s.status).toBe('interrupted');
    expect(s.dead_owner_pid).toBe(pid);

    const text = lem(['--state', state, 'campaign', 'status', 'dead-owner-1']);
    expect(text.stdout).toContain(`— interrupted (its process ${pid} is gone; resume with: lem campaign resume dead-owner-1)`);

    const list = lem(['--state', state, 'campaign', 'list', '--json']);
    const rows = (JSON.parse(list.stdout) as { campaigns: { id: string; status: string; dead_owner_pid: number | null }[] }).campaigns;
    expect(rows).toEqual([expect.objectContaining({ id: 'dead-owner-1', status: 'interrupted', dead_owner_pid: pid })]);
    expect(lem(['--state', state, 'campaign', 'list']).stdout).toContain(`interrupted (pid ${pid} gone)`);
  });

  it('a live owner is still shown as running', () => {
    const state = stateWithClaimedCampaign('live-owner-1', process.pid);
    const s = JSON.parse(lem(['--state', state, 'campaign', 'status', 'live-owner-1', '--json']).stdout) as { status: string; dead_owner_pid: number | null };
    expect(s).toMatchObject({ status: 'running', dead_owner_pid: null });
  });
});
