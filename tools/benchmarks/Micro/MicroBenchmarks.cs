using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace MsiProxy.Benchmarks.Micro;

/// <summary>
/// Scenario 6. Runs in-process (no second build of the project on a shared 2-core machine) with MemoryDiagnoser,
/// exporting GitHub markdown and JSON into BenchmarkDotNet.Artifacts (the harness copies them to docs/benchmarks).
/// `micro --smoke` runs every benchmark once (Dry job) to keep them working.
/// </summary>
internal static class MicroBenchmarks
{
    public static int Run(string[] args)
    {
        var smoke = args.Contains("--smoke");
        var job = (smoke ? Job.Dry : Job.ShortRun.WithWarmupCount(3).WithIterationCount(8).WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds(150)))
            .WithToolchain(InProcessEmitToolchain.Instance);
        var config = ManualConfig.CreateEmpty()
            .AddJob(job)
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddExporter(MarkdownExporter.GitHub, JsonExporter.Brief)
            .AddColumnProvider(DefaultColumnProviders.Instance)
            .AddLogger(BenchmarkDotNet.Loggers.ConsoleLogger.Default)
            .WithOptions(ConfigOptions.DisableOptimizationsValidator | ConfigOptions.JoinSummary)
            .WithArtifactsPath(Arguments.Get(args, "artifacts", Path.Combine(Environment.CurrentDirectory, "BenchmarkDotNet.Artifacts")));
        var summaries = BenchmarkRunner.Run([typeof(ClientLookupBenchmarks), typeof(RequestParsingBenchmarks), typeof(CacheHitBenchmarks), typeof(SchedulerBenchmarks), typeof(LogLineBenchmarks)], config);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }
}
