# frozen_string_literal: true

require "open3"

# The redis-ipc tool as the specs run it: built with `make` (once per
# process, as the build is up to date afterwards), run with REDIS_URL set
# to the suite's server unless an example passes its own environment.
module CLITool
  def self.build
    @build ||= File.join(SpecHelpers.make_c_programs, "redis-ipc")
  end

  # [stdout, stderr, Process::Status]
  def run_cli(*args, env: {}, stdin: "")
    Open3.capture3({ "REDIS_URL" => redis_url }.merge(env), CLITool.build, *args, stdin_data: stdin, binmode: true)
  end

  # A process alive and not a zombie (a container's init may never reap
  # the orphans a killed command leaves).
  def process_alive?(pid)
    File.read("/proc/#{pid}/stat")[/\) (\S)/, 1] != "Z"
  rescue Errno::ENOENT, Errno::ESRCH
    false
  end
end
