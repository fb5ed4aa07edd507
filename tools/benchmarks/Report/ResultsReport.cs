using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MsiProxy.Benchmarks.Report;

/// <summary>
/// Turns the harness's raw measurements (one JSON object per line, every system measured in the same rounds) into
/// results.json, results.md and chart.png. A ratio is computed per round, between systems measured back to back,
/// and the median of those per-round ratios is the claim; absolute numbers are medians too but only describe this run.
/// </summary>
internal static class ResultsReport
{
    public static int Run(string[] args)
    {
        var raw = File.ReadAllLines(Arguments.Get(args, "raw"))
            .Where(line => line.TrimStart().StartsWith('{'))
            .Select(line => JsonNode.Parse(line)!.AsObject())
            .ToList();
        var environment = JsonNode.Parse(File.ReadAllText(Arguments.Get(args, "environment")))!.AsObject();
        var micro = Arguments.Get(args, "micro", "");
        var output = Arguments.Get(args, "out");
        Directory.CreateDirectory(output);

        var data = new Measurements(raw);
        // The build every scenario but start-up ran (run.sh's BENCH_BUILD, Native AOT unless set); runs recorded before
        // run.sh wrote it all ran the JIT build.
        var summary = Summarise(data, environment["msiproxy_build"]?.GetValue<string>() ?? "jit");
        summary["environment"] = environment.DeepClone();
        summary["micro"] = MicroTable.Read(micro);
        File.WriteAllText(Path.Combine(output, "results.json"), summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.WriteAllText(Path.Combine(output, "results.md"), Markdown(summary));
        Chart.Write(summary, Path.Combine(output, "chart.png"));
        if (data.Rounds("victim") > 0)
        {
            VictimChart.Write(data, Path.Combine(output, "victim.png"));
        }

        Console.WriteLine(Headline(summary));
        return 0;
    }

    public static string Headline(JsonObject summary)
    {
        var hits = summary["hits"]!;
        var logged = summary["hits_logged"];
        return string.Create(CultureInfo.InvariantCulture,
            $"RESULT as shipped (logging on): MsiProxy {Num(logged?["ratio_msiproxy_to_nginx_rps"])}x nginx with access_log, logging costs {Percent(logged?["logging_cost"])}; " +
            $"logging at Warning: MsiProxy {Num(hits["ratio_msiproxy_to_nginx_rps"])}x nginx req/s, {Num(hits["ratio_msiproxy_to_kestrel_rps"])}x bare Kestrel; " +
            $"p99 {Num(hits["msiproxy"]?["p99_ms"])} ms vs nginx {Num(hits["nginx"]?["p99_ms"])} ms; " +
            $"miss added p50 ratio {Num(summary["miss"]?["ratio_added_p50_msiproxy_to_nginx"])}; " +
            $"amplification upstream calls {Num(summary["amplify"]?["msiproxy"]?["upstream_calls"])}/{Num(summary["amplify"]?["keys"])} keys (nginx {Num(summary["amplify"]?["nginx"]?["upstream_calls"])}); " +
            $"RSS under load {Num(summary["memory"]?["ratio_msiproxy_to_kestrel_load"])}x bare Kestrel; " +
            $"CPU per hit at 50/s {Num(summary["paced"]?["50/s"]?["msiproxy"]?["cpu_us_per_request"], 0)} µs (nginx {Num(summary["paced"]?["50/s"]?["nginx"]?["cpu_us_per_request"], 0)} µs); " +
            $"victim under flood: MsiProxy p50 {Num(summary["victim"]?["msiproxy"]?["flood"]?["p50_ms"])} ms, {Percent(summary["victim"]?["msiproxy"]?["flood"]?["failed_share"])} failed " +
            $"(nginx p50 {Num(summary["victim"]?["nginx"]?["flood"]?["p50_ms"])} ms, {Percent(summary["victim"]?["nginx"]?["flood"]?["failed_share"])} failed)");
    }

    private static JsonObject Summarise(Measurements data, string build)
    {
        var hits = new JsonObject();
        foreach (var system in new[] { "msiproxy", "nginx", "kestrel" })
        {
            hits[system] = new JsonObject
            {
                ["rps"] = data.Median("hits", system, "rps"),
                ["p50_ms"] = data.Median("hits", system, "p50_ms"),
                ["p99_ms"] = data.Median("hits", system, "p99_ms"),
                ["errors"] = data.Sum("hits", system, "errors"),
            };
        }

        hits["ratio_msiproxy_to_nginx_rps"] = data.RoundRatio("hits", "msiproxy", "nginx", "rps");
        hits["ratio_msiproxy_to_kestrel_rps"] = data.RoundRatio("hits", "msiproxy", "kestrel", "rps");
        hits["ratio_msiproxy_to_nginx_p99"] = data.RoundRatio("hits", "msiproxy", "nginx", "p99_ms");
        hits["rounds"] = data.Rounds("hits");

        // Logging's cost: 1b's proxy as shipped against the same process at Warning, in the same rounds.
        var logged = new JsonObject();
        foreach (var system in new[] { "msiproxy", "nginx", "msiproxy_warning" })
        {
            logged[system] = new JsonObject
            {
                ["rps"] = data.Median("hits_logged", system, "rps"),
                ["p99_ms"] = data.Median("hits_logged", system, "p99_ms"),
                ["errors"] = data.Sum("hits_logged", system, "errors"),
            };
        }

        logged["ratio_msiproxy_to_nginx_rps"] = data.RoundRatio("hits_logged", "msiproxy", "nginx", "rps");
        logged["logging_cost"] = Value(data.RoundRatio("hits_logged", "msiproxy", "msiproxy_warning", "rps")) is { } kept
            ? Math.Round(1 - kept, 3)
            : null;
        logged["rounds"] = data.Rounds("hits_logged");

        var miss = new JsonObject();
        foreach (var system in new[] { "direct", "msiproxy", "nginx", "forwarder" })
        {
            miss[system] = new JsonObject { ["p50_ms"] = data.Median("miss", system, "p50_ms"), ["p99_ms"] = data.Median("miss", system, "p99_ms"), ["rps"] = data.Median("miss", system, "rps") };
        }

        miss["msiproxy_added_p50_ms"] = data.MedianOfRounds("miss", round => round("msiproxy", "p50_ms") - round("direct", "p50_ms"));
        miss["nginx_added_p50_ms"] = data.MedianOfRounds("miss", round => round("nginx", "p50_ms") - round("direct", "p50_ms"));
        miss["forwarder_added_p50_ms"] = data.MedianOfRounds("miss", round => round("forwarder", "p50_ms") - round("direct", "p50_ms"));
        miss["ratio_added_p50_msiproxy_to_nginx"] = Ratio(miss["msiproxy_added_p50_ms"], miss["nginx_added_p50_ms"]);
        miss["ratio_added_p50_forwarder_to_nginx"] = Ratio(miss["forwarder_added_p50_ms"], miss["nginx_added_p50_ms"]);
        miss["rounds"] = data.Rounds("miss");

        var amplify = new JsonObject { ["keys"] = data.Median("amplify", "msiproxy", "keys"), ["clients"] = data.Median("amplify", "msiproxy", "clients"),
            ["requests_per_client"] = data.Median("amplify", "msiproxy", "requests_per_client") };
        foreach (var system in new[] { "msiproxy", "nginx" })
        {
            amplify[system] = new JsonObject
            {
                ["upstream_calls"] = data.Median("amplify", system, "upstream_calls"),
                ["upstream_calls_max"] = data.Max("amplify", system, "upstream_calls"),
                ["not_ok"] = data.Sum("amplify", system, "not_ok"),
                ["elapsed_ms"] = data.Median("amplify", system, "elapsed_ms"),
            };
        }

        amplify["rounds"] = data.Rounds("amplify");

        var memory = new JsonObject();
        foreach (var system in new[] { "msiproxy", "kestrel", "nginx" })
        {
            var phases = new JsonObject();
            foreach (var phase in new[] { "idle", "load", "populated" })
            {
                if (data.Median("memory", system, "rss_mb", phase) is { } value)
                {
                    phases[phase] = value;
                }
            }

            memory[system] = phases;
        }

        memory["populated_start_to_first_token_s"] = data.Median("memory", "msiproxy", "start_to_first_token_s", "populated");
        memory["ratio_msiproxy_to_kestrel_load"] = data.RoundRatio("memory", "msiproxy", "kestrel", "rss_mb", "load");
        memory["rounds"] = data.Rounds("hits"); // load samples come from the scenario-1 rounds; idle and populated are single readings

        var startup = new JsonObject();
        foreach (var system in new[] { "jit", "r2r", "aot" })
        {
            startup[system] = new JsonObject { ["first_token_ms"] = data.Median("startup", system, "first_token_ms") };
        }

        startup["ratio_r2r_to_jit"] = data.RoundRatio("startup", "r2r", "jit", "first_token_ms");
        startup["ratio_aot_to_jit"] = data.RoundRatio("startup", "aot", "jit", "first_token_ms");
        startup["measured_build"] = build;
        startup["rounds"] = data.Rounds("startup");

        return new JsonObject
        {
            ["generated_utc"] = DateTimeOffset.UtcNow.ToString("u", CultureInfo.InvariantCulture),
            ["hits"] = hits,
            ["hits_logged"] = logged,
            ["miss"] = miss,
            ["amplify"] = amplify,
            ["memory"] = memory,
            ["startup"] = startup,
            ["victim"] = Victim(data),
            ["paced"] = Paced(data),
            ["goals"] = Goals(hits, logged, miss, amplify, memory, startup),
        };
    }

    /// <summary>
    /// Scenario 7: the quiet client's answers pooled over all rounds, per system and phase (no_flood, flood) — with
    /// ~50 samples a round, a per-round p99 is nearly the maximum, so the percentiles are taken over every sample.
    /// Latency percentiles cover every answer (a refusal is fast); ok_* only the tokens served; failed = not 200.
    /// </summary>
    private static JsonObject Victim(Measurements data)
    {
        var victim = new JsonObject { ["rounds"] = data.Rounds("victim") };
        foreach (var system in new[] { "msiproxy", "nginx" })
        {
            var phases = new JsonObject();
            foreach (var phase in VictimChart.Phases)
            {
                var samples = VictimChart.Samples(data, system, phase).ToList();
                if (samples.Count == 0)
                {
                    continue;
                }

                var all = samples.Select(s => s.LatencyMs).Order().ToArray();
                var ok = samples.Where(s => s.Status == 200).Select(s => s.LatencyMs).Order().ToArray();
                var failed = samples.Count(s => s.Status != 200);
                phases[phase] = new JsonObject
                {
                    ["requests"] = samples.Count,
                    ["failed"] = failed,
                    ["failed_share"] = Math.Round((double)failed / samples.Count, 4),
                    ["p50_ms"] = Percentile(all, 50),
                    ["p99_ms"] = Percentile(all, 99),
                    ["ok_p50_ms"] = Percentile(ok, 50),
                    ["ok_p99_ms"] = Percentile(ok, 99),
                    ["flood_rate"] = data.Median("victim", system, "flood_rate", phase),
                    ["upstream_throttled"] = data.Sum("victim", system, "upstream_throttled", phase),
                };
            }

            victim[system] = phases;
        }

        return victim;
    }

    /// <summary>Scenario 8, per rate: each system's medians over rounds, and MsiProxy's CPU per request against the others', per round.</summary>
    private static JsonObject Paced(Measurements data)
    {
        var paced = new JsonObject { ["rounds"] = data.Rounds("paced") };
        foreach (var rate in PacedRates)
        {
            var row = new JsonObject();
            foreach (var system in new[] { "msiproxy", "nginx", "kestrel" })
            {
                row[system] = new JsonObject
                {
                    ["cpu_us_per_request"] = data.Median("paced", system, "cpu_us_per_request", rate),
                    ["p50_ms"] = data.Median("paced", system, "p50_ms", rate),
                    ["p99_ms"] = data.Median("paced", system, "p99_ms", rate),
                    ["errors"] = data.Sum("paced", system, "errors", rate),
                };
            }

            row["ratio_cpu_msiproxy_to_nginx"] = data.RoundRatio("paced", "msiproxy", "nginx", "cpu_us_per_request", rate);
            row["ratio_cpu_msiproxy_to_kestrel"] = data.RoundRatio("paced", "msiproxy", "kestrel", "cpu_us_per_request", rate);
            paced[rate] = row;
        }

        return paced;
    }

    private static readonly string[] PacedRates = ["50/s", "400/s"];

    private static JsonNode? Percentile(double[] sorted, int percent) => sorted.Length == 0
        ? null
        : Math.Round(sorted[Math.Max(0, (int)Math.Ceiling(percent / 100.0 * sorted.Length) - 1)], 2);

    /// <summary>Issue 17's goals (a per-node agent: as shipped, side by side), then the cache's own from issue 9.</summary>
    private static JsonArray Goals(JsonObject hits, JsonObject logged, JsonObject miss, JsonObject amplify, JsonObject memory, JsonObject startup)
    {
        // Nothing measured is neither met nor missed (a comparison with a null is false, not unknown).
        static JsonObject Goal(string name, string target, JsonNode? value, bool? met) =>
            new() { ["goal"] = name, ["target"] = target, ["measured"] = value?.DeepClone(), ["met"] = value is null ? null : met };

        var shipped = Value(logged["ratio_msiproxy_to_nginx_rps"]);
        var cost = Value(logged["logging_cost"]);
        var kestrel = Value(hits["ratio_msiproxy_to_kestrel_rps"]);
        var p99 = Value(hits["ratio_msiproxy_to_nginx_p99"]);
        var idle = Value(memory["msiproxy"]?["idle"]);
        var rss = Value(memory["ratio_msiproxy_to_kestrel_load"]);
        var populated = Value(memory["msiproxy"]?["populated"]);
        var build = startup["measured_build"]!.GetValue<string>();
        var firstToken = Value(startup["aot"]?["first_token_ms"]);
        JsonNode? addedStart = Value(memory["populated_start_to_first_token_s"]) is { } many && Value(startup[build]?["first_token_ms"]) is { } one
            ? Math.Round(many - one / 1000, 2)
            : null;
        var added = Value(miss["ratio_added_p50_msiproxy_to_nginx"]);
        var calls = Value(amplify["msiproxy"]?["upstream_calls_max"]);
        var keys = Value(amplify["keys"]);
        return
        [
            Goal("as shipped (logging on): MsiProxy req/s vs nginx with access_log", ">= 1.0x", logged["ratio_msiproxy_to_nginx_rps"], shipped >= 1.0),
            Goal("logging's cost to MsiProxy's req/s (1b: the same process at Warning, same rounds), %", "<= 10", cost is { } share ? Math.Round(share * 100, 1) : null, cost <= 0.10),
            Goal("logging at Warning: MsiProxy req/s vs bare Kestrel", ">= 0.9x", hits["ratio_msiproxy_to_kestrel_rps"], kestrel >= 0.9),
            Goal("logging at Warning: MsiProxy p99 vs nginx p99", "<= 1.0x", hits["ratio_msiproxy_to_nginx_p99"], p99 <= 1.0),
            Goal("idle RSS MB", "<= 60", memory["msiproxy"]?["idle"], idle <= 60),
            Goal("RSS under load vs bare Kestrel", "<= 1.3x", memory["ratio_msiproxy_to_kestrel_load"], rss <= 1.3),
            Goal("RSS MB with 10,000 clients and 10,000 cached tokens", "<= 150", memory["msiproxy"]?["populated"], populated <= 150),
            Goal("start-up to first token, the Linux image's build (Native AOT), ms", "<= 300", startup["aot"]?["first_token_ms"], firstToken <= 300),
            Goal("10,000 configured clients: start-up added, s", "< 1", addedStart, Value(addedStart) < 1),
            Goal("cache misses: added p50 latency vs nginx", "<= 1.2x", miss["ratio_added_p50_msiproxy_to_nginx"], added <= 1.2),
            Goal("amplification: upstream calls (worst round)", "exactly K", amplify["msiproxy"]?["upstream_calls_max"], calls is null || keys is null ? null : calls == keys),
        ];
    }

    private static string Markdown(JsonObject s)
    {
        var md = new StringBuilder();
        var env = s["environment"]!;
        md.AppendLine(CultureInfo.InvariantCulture, $"# Benchmark results ({s["generated_utc"]})").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Mode: **{env["mode"]}**, {env["rounds"]} round(s), {env["duration_s"]} s per measurement, systems alternated within each round. " +
            $"MsiProxy build outside start-up: **{env["msiproxy_build"] ?? "jit"}**. " +
            $"Request logging: **{env["request_logging"]}**. Machine: {env["cpu_model"]}, {env["nproc"]} cores, {env["memory"]}; load average at start {env["loadavg_start"]}, at end {env["loadavg_end"]}.").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"`{ResultsReport.Headline(s)}`").AppendLine();

        md.AppendLine("## Goals").AppendLine().AppendLine("| Goal | Target | Measured (median) | Met |").AppendLine("|---|---|---|---|");
        foreach (var goal in s["goals"]!.AsArray())
        {
            var met = goal!["met"]?.GetValue<bool?>() switch { true => "yes", false => "**no**", null => "n/a" };
            md.AppendLine(CultureInfo.InvariantCulture, $"| {goal["goal"]} | {goal["target"]} | {Num(goal["measured"])} | {met} |");
        }

        var hits = s["hits"]!;
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"## 1. Cached token hits, request log and audit at Warning ({env["connections"]} connections, {hits["rounds"]} rounds)").AppendLine()
            .AppendLine("| System | req/s | p50 ms | p99 ms | errors |").AppendLine("|---|---:|---:|---:|---:|");
        foreach (var (system, label) in new[] { ("msiproxy", "MsiProxy"), ("nginx", "nginx proxy_cache"), ("kestrel", "bare Kestrel (ceiling)") })
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {label} | {Num(hits[system]?["rps"], 0)} | {Num(hits[system]?["p50_ms"])} | {Num(hits[system]?["p99_ms"])} | {Num(hits[system]?["errors"], 0)} |");
        }

        md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Per-round ratios (median): MsiProxy/nginx req/s **{Num(hits["ratio_msiproxy_to_nginx_rps"])}**, MsiProxy/bare Kestrel req/s **{Num(hits["ratio_msiproxy_to_kestrel_rps"])}**, MsiProxy/nginx p99 **{Num(hits["ratio_msiproxy_to_nginx_p99"])}**.");

        if (s["hits_logged"] is { } logged && logged["rounds"]?.GetValue<int>() > 0)
        {
            md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"## 1b. As shipped: cached hits with logging on ({env["connections"]} connections, {logged["rounds"]} rounds)").AppendLine()
                .AppendLine("MsiProxy with its defaults (a request line and an audit event per request, to the console) against nginx with `access_log` on; both write to a file. " +
                    "The same MsiProxy process with both events at Warning (its configuration file reloaded between runs) is in the same rotation: the difference is logging's cost.").AppendLine()
                .AppendLine("| System | req/s | p99 ms | errors |").AppendLine("|---|---:|---:|---:|");
            foreach (var (system, label) in new[] { ("msiproxy", "MsiProxy, as shipped"), ("nginx", "nginx proxy_cache, access_log on"), ("msiproxy_warning", "the same MsiProxy, both events at Warning") })
            {
                if (logged[system]?["rps"] is null)
                {
                    continue; // raw lines from before 1b measured the proxy at Warning too
                }

                md.AppendLine(CultureInfo.InvariantCulture, $"| {label} | {Num(logged[system]?["rps"], 0)} | {Num(logged[system]?["p99_ms"])} | {Num(logged[system]?["errors"], 0)} |");
            }

            md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Per-round ratio (median): MsiProxy/nginx req/s **{Num(logged["ratio_msiproxy_to_nginx_rps"])}**. " +
                $"Logging's cost: 1 − the median per-round ratio of MsiProxy as shipped to the same process at Warning **{Percent(logged["logging_cost"])}**.");
        }

        var miss = s["miss"]!;
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"## 2. Cache misses (unique resources, {env["miss_connections"]} connection(s), {miss["rounds"]} rounds)").AppendLine()
            .AppendLine("| Path | p50 ms | p99 ms | req/s | added p50 ms |").AppendLine("|---|---:|---:|---:|---:|");
        md.AppendLine(CultureInfo.InvariantCulture, $"| emulator directly | {Num(miss["direct"]?["p50_ms"])} | {Num(miss["direct"]?["p99_ms"])} | {Num(miss["direct"]?["rps"], 0)} | — |");
        md.AppendLine(CultureInfo.InvariantCulture, $"| MsiProxy | {Num(miss["msiproxy"]?["p50_ms"])} | {Num(miss["msiproxy"]?["p99_ms"])} | {Num(miss["msiproxy"]?["rps"], 0)} | {Num(miss["msiproxy_added_p50_ms"])} |");
        md.AppendLine(CultureInfo.InvariantCulture, $"| nginx proxy_pass | {Num(miss["nginx"]?["p50_ms"])} | {Num(miss["nginx"]?["p99_ms"])} | {Num(miss["nginx"]?["rps"], 0)} | {Num(miss["nginx_added_p50_ms"])} |");
        md.AppendLine(CultureInfo.InvariantCulture, $"| bare .NET forwarder (ceiling) | {Num(miss["forwarder"]?["p50_ms"])} | {Num(miss["forwarder"]?["p99_ms"])} | {Num(miss["forwarder"]?["rps"], 0)} | {Num(miss["forwarder_added_p50_ms"])} |");
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Added-latency ratio MsiProxy/nginx: **{Num(miss["ratio_added_p50_msiproxy_to_nginx"])}**; the bare forwarder's: **{Num(miss["ratio_added_p50_forwarder_to_nginx"])}**.");

        var amp = s["amplify"]!;
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"## 3. Upstream amplification ({amp["clients"]} clients × {amp["requests_per_client"]} requests over {amp["keys"]} cold keys, {amp["rounds"]} rounds)").AppendLine()
            .AppendLine("| System | upstream calls (median) | worst round | non-200 answers (all rounds) | burst time ms |").AppendLine("|---|---:|---:|---:|---:|");
        foreach (var (system, label) in new[] { ("msiproxy", "MsiProxy"), ("nginx", "nginx proxy_cache_lock") })
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {label} | {Num(amp[system]?["upstream_calls"], 0)} | {Num(amp[system]?["upstream_calls_max"], 0)} | {Num(amp[system]?["not_ok"], 0)} | {Num(amp[system]?["elapsed_ms"], 0)} |");
        }

        var mem = s["memory"]!;
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"## 4. Memory (RSS MB; under load: peak per run, median of {mem["rounds"]} rounds)").AppendLine()
            .AppendLine("| System | idle | under scenario-1 load | 10,000 cache entries + 10,000 clients |").AppendLine("|---|---:|---:|---:|");
        foreach (var (system, label) in new[] { ("msiproxy", "MsiProxy"), ("kestrel", "bare Kestrel"), ("nginx", "nginx (master + workers)") })
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {label} | {Num(mem[system]?["idle"], 0)} | {Num(mem[system]?["load"], 0)} | {Num(mem[system]?["populated"], 0)} |");
        }

        md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Under load, MsiProxy/bare Kestrel: **{Num(mem["ratio_msiproxy_to_kestrel_load"])}**. " +
            $"The populated proxy (10,000 clients in its configuration file) served its first token {Num(mem["populated_start_to_first_token_s"], 1)} s after start.");

        var start = s["startup"]!;
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"## 5. Start-up: process start → first token served ({start["rounds"]} rounds)").AppendLine()
            .AppendLine("| Publish | ms |").AppendLine("|---|---:|")
            .AppendLine(CultureInfo.InvariantCulture, $"| JIT (framework-dependent) | {Num(start["jit"]?["first_token_ms"], 0)} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| ReadyToRun (the Windows image's build) | {Num(start["r2r"]?["first_token_ms"], 0)} |")
            .AppendLine(CultureInfo.InvariantCulture, $"| Native AOT (the Linux image's build) | {Num(start["aot"]?["first_token_ms"], 0)} |")
            .AppendLine().AppendLine(CultureInfo.InvariantCulture, $"ReadyToRun/JIT: **{Num(start["ratio_r2r_to_jit"])}**; Native AOT/JIT: **{Num(start["ratio_aot_to_jit"])}**.");

        if (s["micro"] is JsonArray { Count: > 0 } micro)
        {
            md.AppendLine().AppendLine("## 6. Micro-benchmarks (BenchmarkDotNet, in-process, MemoryDiagnoser)").AppendLine()
                .AppendLine("| Benchmark | Mean ns | Allocated B/op |").AppendLine("|---|---:|---:|");
            foreach (var row in micro)
            {
                md.AppendLine(CultureInfo.InvariantCulture, $"| {row!["name"]} | {Num(row["mean_ns"], 1)} | {Num(row["allocated_bytes"], 0)} |");
            }
        }

        if (s["victim"]?["rounds"]?.GetValue<int>() > 0)
        {
            var victim = s["victim"]!;
            md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"## 7. Victim latency: a quiet client beside a flooding neighbour, IMDS's limits on ({victim["rounds"]} rounds)").AppendLine()
                .AppendLine(CultureInfo.InvariantCulture, $"The emulator enforces 20 requests/s and 5 at a time and answers each token after 50 ms; the neighbour sends {Num(victim["msiproxy"]?["flood"]?["flood_rate"], 0)} new-token requests/s, " +
                    $"the quiet client one every 200 ms (a new resource each). Percentiles over every quiet answer of all rounds; failed = anything but 200.").AppendLine()
                .AppendLine("| System | neighbour | quiet requests | failed | p50 ms (all answers) | p99 ms (all answers) | p50 ms of tokens served | p99 ms of tokens served | emulator 429s (to either caller) |")
                .AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var (system, label) in new[] { ("msiproxy", "MsiProxy (default limits, fair queue)"), ("nginx", "nginx proxy_pass") })
            {
                foreach (var phase in VictimChart.Phases)
                {
                    var row = victim[system]?[phase];
                    md.AppendLine(CultureInfo.InvariantCulture, $"| {label} | {(phase == "flood" ? "flooding" : "idle")} | {Num(row?["requests"], 0)} | {Percent(row?["failed_share"])} | " +
                        $"{Num(row?["p50_ms"])} | {Num(row?["p99_ms"])} | {Num(row?["ok_p50_ms"])} | {Num(row?["ok_p99_ms"])} | {Num(row?["upstream_throttled"], 0)} |");
                }
            }

            md.AppendLine().AppendLine("![victim latency](victim.png)");
        }

        if (s["paced"]?["rounds"]?.GetValue<int>() > 0)
        {
            var paced = s["paced"]!;
            md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"## 8. A node's load: CPU per cached hit at a light, steady rate ({paced["rounds"]} rounds)").AppendLine()
                .AppendLine("MsiProxy as shipped (logging on) and nginx with `access_log` on, as in 1b, and bare Kestrel; requests evenly spaced (50/s on one connection, 400/s on four); " +
                    "CPU is each server's own user + system time over the run, divided by the requests.").AppendLine()
                .AppendLine("| Rate | System | CPU µs per request | p50 ms | p99 ms | errors |").AppendLine("|---|---|---:|---:|---:|---:|");
            foreach (var rate in PacedRates)
            {
                foreach (var (system, label) in new[] { ("msiproxy", "MsiProxy, as shipped"), ("nginx", "nginx proxy_cache, access_log on"), ("kestrel", "bare Kestrel") })
                {
                    var row = paced[rate]?[system];
                    md.AppendLine(CultureInfo.InvariantCulture, $"| {rate} | {label} | {Num(row?["cpu_us_per_request"], 0)} | {Num(row?["p50_ms"])} | {Num(row?["p99_ms"])} | {Num(row?["errors"], 0)} |");
                }
            }

            md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Per-round ratios of CPU per request (median): MsiProxy/nginx **{Num(paced["50/s"]?["ratio_cpu_msiproxy_to_nginx"])}** at 50/s, " +
                $"**{Num(paced["400/s"]?["ratio_cpu_msiproxy_to_nginx"])}** at 400/s; MsiProxy/bare Kestrel **{Num(paced["50/s"]?["ratio_cpu_msiproxy_to_kestrel"])}** and **{Num(paced["400/s"]?["ratio_cpu_msiproxy_to_kestrel"])}**.");
        }

        md.AppendLine().AppendLine("![chart](chart.png)");
        return md.ToString();
    }

    internal static string Percent(JsonNode? share) => Value(share) is { } d ? (d * 100).ToString("0.#", CultureInfo.InvariantCulture) + " %" : "—";

    internal static double? Value(JsonNode? node) => node is JsonValue value && value.TryGetValue<double>(out var d) ? d : null;

    internal static JsonNode? Ratio(JsonNode? a, JsonNode? b) =>
        Value(a) is { } x && Value(b) is { } y && y > 0 ? Math.Round(x / y, 3) : null;

    internal static string Num(JsonNode? node, int decimals = 2) => Value(node) is { } d
        ? d.ToString(decimals == 0 ? "N0" : "0." + new string('#', decimals), CultureInfo.InvariantCulture)
        : node?.ToString() ?? "—";
}
