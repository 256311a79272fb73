/** A test probe: lib/calendar.lua's period containing now_ms in a zone given by its rules (tz_rules). */
export const PERIOD_PROBE = [
  '--- @script tz_period_probe',
  '--- @version 1',
  '--- @summary Test probe: the calendar period containing now_ms in a zone given by its rules.',
  '--- @arg unit enum:day|week|month required The calendar period.',
  '--- @arg tz_rules string required maxlen=1024 The zone\'s rules.',
  '--- @arg now_ms int required 0..140737488355328 The instant.',
  '--- @return start_ms int Period start.',
  '--- @return end_ms int Period end.',
  '--- @include "lib/calendar"',
  '--- @args',
  "local start, period_end = rl_calendar_period(now_ms, unit, rl_tz_rules('tz_period_probe', tz_rules))",
  'return rl_reply({ start, period_end })',
].join('\n');

