using BenchmarkDotNet.Attributes;
using MsiProxy.ServiceDefaults;
using MsiProxy.Telemetry;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Extensions.Logging;
using Serilog.Formatting.Compact;

namespace MsiProxy.Benchmarks.Micro;

/// <summary>
/// One audit event, the two ways it can be made. As the proxy does: a <see cref="ShapedLine"/> (the template parsed
/// once, typed values inline, the request scope from the HttpContext) formatted straight into its console line on the
/// request thread. As the peer: through Microsoft.Extensions.Logging into Serilog inside a request's log scope (the
/// bridge), then formatted by <see cref="JsonLines"/> or Serilog's own <see cref="RenderedCompactJsonFormatter"/>.
/// The lines are the same document, properties aside in order (ShapedLogsTests); these measure what each costs.
/// </summary>
public partial class LogLineBenchmarks
{
    private readonly MemoryStream _line = new();
    private readonly StringWriter _text = new();
    private readonly JsonLines _lines = new();
    private readonly RenderedCompactJsonFormatter _serilog = new();
    private readonly Capture _capture = new();
    private SerilogLoggerFactory _factory = null!;
    private Microsoft.Extensions.Logging.ILogger _audit = null!;
    private LogEvent _event = null!;
    private readonly DefaultHttpContext _request = new() { TraceIdentifier = "0HNH6RF2JQ1N5:00000001" };

    [GlobalSetup]
    public void Setup()
    {
        var logger = new LoggerConfiguration()
            .MinimumLevel.Information()
            .Enrich.FromLogContext()
            .WriteTo.Sink(_capture)
            .CreateLogger();
        _factory = new SerilogLoggerFactory(logger, dispose: true);
        _audit = _factory.CreateLogger("MsiProxy.Audit");
        Log_through_the_bridge();
        _event = _capture.Last!;
        _request.Connection.Id = "0HNH6RF2JQ1N5";
        _request.Request.Path = "/metadata/identity/oauth2/token";
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _factory.Dispose();
        _lines.Dispose();
    }

    [Benchmark]
    public void Log_through_the_bridge()
    {
        using var scope = _audit.BeginScope(new Dictionary<string, object?>
        {
            ["ConnectionId"] = "0HNH6RF2JQ1N5", ["RequestId"] = "0HNH6RF2JQ1N5:00000001", ["RequestPath"] = "/metadata/identity/oauth2/token",
        });
        Audited(_audit, "cache", "token", "bench", "c0ffee1234", "127.0.0.1", "system", "https://management.azure.com/",
            "/metadata/identity/oauth2/token", 200, "http://127.0.0.1:17280", 0.0412);
    }

    [Benchmark]
    public long Shaped_line()
    {
        var values = new LogValues();
        values[0] = "cache";
        values[1] = "token";
        values[2] = "bench";
        values[3] = "c0ffee1234";
        values[4] = "127.0.0.1";
        values[5] = "system";
        values[6] = "https://management.azure.com/";
        values[7] = "/metadata/identity/oauth2/token";
        values[8] = 200;
        values[9] = "http://127.0.0.1:17280";
        values[10] = 0.0412;
        _line.SetLength(0);
        _lines.Write(new ShapedLine(RequestRecorder.DecisionShape, in values, _request, DateTime.UtcNow, []), _line);
        return _line.Length;
    }

    [Benchmark]
    public long Line_by_JsonLines()
    {
        _line.SetLength(0);
        _lines.Write(_event, _line);
        return _line.Length;
    }

    [Benchmark(Baseline = true)]
    public int Line_by_Serilog_formatter()
    {
        _text.GetStringBuilder().Clear();
        _serilog.Format(_event, _text);
        return _text.GetStringBuilder().Length;
    }

    [Benchmark]
    public int Message_rendered_by_Serilog()
    {
        _text.GetStringBuilder().Clear();
        _event.MessageTemplate.Render(_event.Properties, _text);
        return _text.GetStringBuilder().Length;
    }

    [LoggerMessage(EventId = 100, Level = Microsoft.Extensions.Logging.LogLevel.Information, EventName = "Decision",
        Message = "{Decision} {Endpoint} for {ClientName} (workload {WorkloadId}, {Caller}) identity {Identity} resource {Resource} path {Path}: {Status} via {Upstream} in {DurationMs:0.0} ms")]
    private static partial void Audited(Microsoft.Extensions.Logging.ILogger logger, string decision, string endpoint, string? clientName, string? workloadId, string? caller,
        string? identity, string? resource, string? path, int status, string? upstream, double durationMs);

    private sealed class Capture : ILogEventSink
    {
        public LogEvent? Last { get; private set; }

        public void Emit(LogEvent logEvent) => Last = logEvent;
    }
}
