# frozen_string_literal: true

# The groups scenario of rake bench (issue 12): many groups on one stream.
# GROUPS (BENCH_GROUPS, default 100) groups are: the sender (in this
# process) and the responder (responder.rb) of bench/run.rb, one idle
# process under test (groups.rb with one group, connected through
# count_proxy.rb), and the others in PROCESSES groups.rb processes; each
# group is a connected RedisIPC::Stream of its own with an echo handler.
#
# Round trips, each run, on a fresh stream for each configuration, back to
# back: sequential send_to_group sender -> responder (ROUNDS round trips
# after 200 of warm-up; p50, p99, and the whole server's commands per round
# trip, which take in what the other groups do because of the pair's
# traffic, and the share of the requests that took the responder's direct
# lane), with
#   - 2 groups: the sender and the responder alone;
#   - GROUPS groups: the same pair, everybody else idle.
# The ratio p50(GROUPS groups) / p50(2 groups) is taken in each run and its
# median reported. Measuring starts SETTLE seconds after the last group
# joined, past the chores each instance runs once as it starts (its first
# retention pass among them).
#
# Idle cost, once: the claim is that an idle process's commands/s does not
# depend on how many groups share its stream, i.e. the server's idle
# commands/s is linear in the groups, the same per group, with no term per
# pair of groups. INFO commandstats counts per server, and Redis 7.0 counts
# nothing per client (CLIENT LIST / CLIENT INFO have no command counts), so:
#   - the whole server's commands/s with every group idle, divided by the
#     groups, for 2 groups (the idle process under test and the responder)
#     and for GROUPS groups (the same two and GROUPS - 2 more); each
#     configuration has a redis-server of its own, and both are measured at
#     once, over the same window;
#   - the idle process under test's own commands/s (the proxy counts the
#     commands it writes), among 2 and among GROUPS groups.
# The window is IDLE_SECONDS = 60 s, a whole number of periods of every
# chore (heartbeats 0.6 s, blocking reads and reclaim 5 s, inbox sweep 10 s,
# retention 60 s: each instance's retention pass asks XPENDING of every
# group of the stream, once a minute), so each chore is counted as often as
# it runs; a shorter window would miss the retention pass or catch it
# whole. Counts of periodic chores vary little, so one window is enough.
#
# While the pair sends, the idle process under test's own commands per round
# trip: on the 1.x wire every group reads every entry of the stream, so an
# idle process pays for every round trip on its stream, and with every group
# busy its commands/s grows with the groups; with the direct lanes it
# should pay nothing.
module GroupsScenario
  module_function

  GROUPS = Integer(ENV.fetch("BENCH_GROUPS", "100"))
  PROCESSES = 4
  IDLE_SECONDS = 60.0
  SETTLE = 3.0
  WARM_UP = 200

  Child = Struct.new(:io, :name)

  def spawn_child(script, *args, name:)
    Child.new(Bench.spawn_ruby(script, *args), name)
  end

  def signing = ENV["BENCH_SIGNING"] == "1" ? { signing: { keys: ["bench key"] } } : {}

  # The idle process under test, behind the counting proxy.
  class CountedProcess
    def initialize(port, stream)
      @proxy = IO.popen([RbConfig.ruby, File.join(__dir__, "count_proxy.rb"), port.to_s], "r+")
      proxy_port = Integer(@proxy.gets)
      @child = GroupsScenario.spawn_child("groups.rb", "redis://127.0.0.1:#{proxy_port}", stream, "idle_", 0, 1,
                                          name: "the idle process under test")
    end

    attr_reader :child

    def commands
      @proxy.puts
      Integer(@proxy.gets)
    end

    def cpu_seconds = Bench.cpu_seconds(@child.io.pid)

    def close = @proxy.close
  end

  # Processes holding `groups` groups on `stream`, one of them the responder
  # and one the idle process under test (when `counted`), the others in
  # PROCESSES groups.rb; the sender's group is counted in `groups` when
  # `sender`. Returns when all of them are connected.
  class Population
    attr_reader :counted

    def initialize(url, port, stream, groups, counted:, sender:)
      @url = url
      @children = [GroupsScenario.spawn_child("responder.rb", url, stream, "responder", name: "the responder")]
      if counted
        @counted = CountedProcess.new(port, stream)
        @children << @counted.child
      end
      others = groups - @children.size - (sender ? 1 : 0)
      per_process = (others + PROCESSES - 1) / PROCESSES
      (0...others).step([per_process, 1].max) do |first|
        @children << GroupsScenario.spawn_child("groups.rb", url, stream, "g", first, [per_process, others - first].min,
                                                name: "groups.rb")
      end
      @children.each do |c|
        line = c.io.gets
        abort "bench: #{c.name} did not start (#{line.inspect})" unless line == "ready\n"
      end
      return unless sender

      @sender = RedisIPC::Stream.new(stream, "sender").on_request { nil }
      @sender.connect(redis_options: { url: url }, ledger: { entry_timeout: 30 }, **GroupsScenario.signing)
    end

    attr_reader :sender

    def stop
      @sender&.disconnect
      @children.each { |c| c.io.close_write }
      @children.each do |c|
        c.io.read
        c.io.close
      end
      @counted&.close
    end
  end

  # One round-trip configuration on a fresh stream.
  def round_trips(url, port, probe, stream, groups, label)
    Bench.progress("#{label}: connecting...")
    population = Population.new(url, port, stream, groups, counted: groups > 2, sender: true)
    sender = population.sender
    counted = population.counted
    sleep SETTLE
    Bench.progress("#{label}: sequential send_to_group x#{ROUNDS}...")
    WARM_UP.times { sender.send_to_group(content: 1, to: "responder") }
    lane = probe.lane_requests(stream, "responder")
    calls = probe.command_calls
    own = counted&.commands
    cpu = counted&.cpu_seconds
    latency, elapsed = Bench.sequential_latencies(sender, ROUNDS)
    commands = probe.command_calls - calls
    result = latency.merge(commands_per_round_trip: commands.to_f / ROUNDS,
                           on_lane: (probe.lane_requests(stream, "responder") - lane).to_f / ROUNDS)
    return [result, nil] unless counted

    own = counted.commands - own
    [result, { commands_per_s: own / elapsed, commands_per_round_trip: own.to_f / ROUNDS,
               cpu_percent: (counted.cpu_seconds - cpu) / elapsed * 100 }]
  ensure
    Bench.progress("#{label}: stopping...")
    population&.stop
  end

  # Both idle configurations at once, each on a redis-server of its own.
  def idle(url, port, probe)
    Bench.with_redis do |small_url, small_port|
      small_probe = Bench::Probe.new(small_port)
      Bench.progress("idle, 2 and #{GROUPS} groups: connecting...")
      configs = {
        two: [Population.new(small_url, small_port, "bench_groups_idle_#{Process.pid}", 2, counted: true, sender: false),
              small_probe, 2],
        many: [Population.new(url, port, "bench_groups_idle_#{Process.pid}", GROUPS, counted: true, sender: false),
               probe, GROUPS]
      }
      sleep SETTLE
      Bench.progress("idle, 2 and #{GROUPS} groups (#{IDLE_SECONDS.to_i} s)...")
      start = configs.transform_values do |pop, pr, _|
        [pr.command_calls, pop.counted.commands, pop.counted.cpu_seconds]
      end
      sleep IDLE_SECONDS
      configs.to_h do |key, (pop, pr, groups)|
        calls, own, cpu = start[key]
        total = (pr.command_calls - calls) / IDLE_SECONDS
        [key, { groups: groups, commands_per_s: total, commands_per_s_per_group: total / groups,
                process_commands_per_s: (pop.counted.commands - own) / IDLE_SECONDS,
                process_cpu_percent: (pop.counted.cpu_seconds - cpu) / IDLE_SECONDS * 100 }]
      end
    ensure
      Bench.progress("idle: stopping...")
      configs&.each_value { |pop, _| pop.stop }
    end
  end

  def run(url, port, probe)
    abort "bench: BENCH_GROUPS must be at least 4 (the pair, the idle process under test and one more)" if GROUPS < 4
    two = []
    many = []
    busy = []
    RUNS.times do |run|
      two << round_trips(url, port, probe, "bench_groups_#{Process.pid}_#{run}_2", 2, "run #{run + 1}/#{RUNS}: 2 groups").first
      result, own = round_trips(url, port, probe, "bench_groups_#{Process.pid}_#{run}_#{GROUPS}", GROUPS,
                                "run #{run + 1}/#{RUNS}: #{GROUPS} groups")
      many << result
      busy << own
    end
    idle_cost = idle(url, port, probe)
    ratios = many.zip(two).map { |m, t| m[:p50_us] / t[:p50_us] }
    {
      groups: GROUPS, processes: PROCESSES + 3,
      round_trips: {
        two: medians(two), many: medians(many),
        p50_ratio: Bench.median(ratios), p50_ratio_each_run: ratios,
        idle_process_while_the_pair_sends: medians(busy)
      },
      idle: idle_cost.merge(
        per_group_ratio: idle_cost[:many][:commands_per_s_per_group] / idle_cost[:two][:commands_per_s_per_group],
        process_ratio: idle_cost[:many][:process_commands_per_s] / idle_cost[:two][:process_commands_per_s]
      )
    }
  end

  def rows(g)
    n = g[:groups]
    rt = g[:round_trips]
    two = rt[:two]
    many = rt[:many]
    busy = rt[:idle_process_while_the_pair_sends]
    idle = g[:idle]
    [
      ["2 groups: sequential send_to_group", format("p50 %.0f µs, p99 %.0f µs (%.2f commands each, %.0f %% on the lane)",
                                                    two[:p50_us], two[:p99_us], two[:commands_per_round_trip],
                                                    two[:on_lane] * 100)],
      ["#{n} groups: sequential send_to_group", format("p50 %.0f µs = %.2fx 2 groups, p99 %.0f µs (%.2f commands each, %.0f %% on the lane)",
                                                         many[:p50_us], rt[:p50_ratio], many[:p99_us],
                                                         many[:commands_per_round_trip], many[:on_lane] * 100)],
      ["#{n} groups / 2 groups: p50 in each run", rt[:p50_ratio_each_run].map { |r| format("%.2fx", r) }.join(" ")],
      ["#{n} groups: idle process while the pair sends", format("%.1f commands/s (%.3f per round trip), CPU %.2f %%",
                                                                 busy[:commands_per_s], busy[:commands_per_round_trip],
                                                                 busy[:cpu_percent])],
      ["2 groups idle (#{IDLE_SECONDS.to_i} s): Redis commands/s", format("%.1f = %.2f per group", idle[:two][:commands_per_s],
                                                 idle[:two][:commands_per_s_per_group])],
      ["#{n} groups idle (#{IDLE_SECONDS.to_i} s): Redis commands/s", format("%.1f = %.2f per group (%.2fx 2 groups)", idle[:many][:commands_per_s],
                                                     idle[:many][:commands_per_s_per_group], idle[:per_group_ratio])],
      ["idle process among 2 groups", format("%.2f commands/s, CPU %.2f %%", idle[:two][:process_commands_per_s],
                                             idle[:two][:process_cpu_percent])],
      ["idle process among #{n} groups", format("%.2f commands/s (%.2fx among 2), CPU %.2f %%",
                                                idle[:many][:process_commands_per_s], idle[:process_ratio],
                                                idle[:many][:process_cpu_percent])]
    ]
  end
end
