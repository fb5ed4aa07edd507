// The .NET side of the benchmark harness (tools/benchmarks/run.sh drives it; method in docs/benchmarks.md):
//   bare      --urls URL --body FILE        Kestrel answering every request with FILE's bytes (the .NET ceiling)
//   forward   --urls URL --upstream URL     Kestrel sending every request on through one HttpClient (the .NET ceiling for a miss)
//   amplify   --target URL --clients N --requests M --keys K --first-client-address 127.0.0.2
//   victim    --target URL --counters URL --duration S [--flood-rate R]   a quiet client's new-token latency beside a flooding neighbour
//   paced     --target URL --rate R --connections C --duration S --pids P,…   CPU per request of the processes P at R cached hits/s
//   startup   --url URL [--timeout S] -- CMD…  process start → first 200 token, in ms
//   scale-admin --admin URL --key K --count N [--step 1000] [--concurrency 8]   ms per step of N admin registrations
//   micro     [BenchmarkDotNet args]        hot-path micro-benchmarks (MemoryDiagnoser)
//   report    --raw FILE --out DIR          medians, ratios, results.md/json and the chart
using MsiProxy.Benchmarks.Bare;
using MsiProxy.Benchmarks.Load;
using MsiProxy.Benchmarks.Micro;
using MsiProxy.Benchmarks.Report;

return args.FirstOrDefault() switch
{
    "bare" => await BareKestrel.RunAsync(args[1..]),
    "forward" => await BareForwarder.RunAsync(args[1..]),
    "amplify" => await AmplificationLoad.RunAsync(args[1..]),
    "victim" => await VictimLoad.RunAsync(args[1..]),
    "paced" => await PacedLoad.RunAsync(args[1..]),
    "startup" => await StartupTimer.RunAsync(args[1..]),
    "scale-admin" => await AdminRegistrationLoad.RunAsync(args[1..]),
    "micro" => MicroBenchmarks.Run(args[1..]),
    "report" => ResultsReport.Run(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: MsiProxy.Benchmarks bare|forward|amplify|victim|paced|startup|scale-admin|micro|report … (see docs/benchmarks.md)");
    return 64;
}
