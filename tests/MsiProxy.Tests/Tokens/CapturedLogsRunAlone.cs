namespace MsiProxy.Tests.Tokens;

/// <summary>
/// Tests that assert on a proxy's captured logs run alone. The product's Serilog set-up replaces the process-wide
/// static logger (AddSerilog without preserveStaticLogger), so while two proxies run in one process each one's
/// events land in whichever LogCapture was built last. One proxy per process in production; not so in a test run.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CapturedLogsRunAlone
{
    public const string Name = "captured logs";
}
