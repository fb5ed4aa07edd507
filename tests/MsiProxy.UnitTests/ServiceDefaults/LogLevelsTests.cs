using CsCheck;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using MsiProxy.ServiceDefaults;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace MsiProxy.UnitTests.ServiceDefaults;

/// <summary>The Serilog settings read from configuration: levels (and their reload) and properties, as Serilog's reader read them.</summary>
public sealed class LogLevelsTests
{
    [Fact]
    public void Default_overrides_and_properties_apply_over_the_code_s_levels()
    {
        var events = new List<LogEvent>();
        using var logger = Logger(events, new Dictionary<string, string?>
        {
            ["Serilog:MinimumLevel:Default"] = "Warning",
            ["Serilog:MinimumLevel:Override:MsiProxy.Requests"] = "debug",
            ["Serilog:MinimumLevel:Override:Yarp"] = "Information",
            ["Serilog:Properties:Node"] = "node-7",
        });

        logger.ForContext(Constants.SourceContextPropertyName, "MsiProxy.Other").Information("below the default");
        logger.ForContext(Constants.SourceContextPropertyName, "MsiProxy.Requests").Debug("overridden down");
        logger.ForContext(Constants.SourceContextPropertyName, "Yarp.Forwarder").Information("configuration beats the code's Warning");
        logger.ForContext(Constants.SourceContextPropertyName, "Yarp.Forwarder").Debug("below its override");

        Assert.Equal(["overridden down", "configuration beats the code's Warning"], events.Select(e => e.MessageTemplate.Text));
        Assert.All(events, e => Assert.Equal("\"node-7\"", e.Properties["Node"].ToString()));
    }

    [Fact]
    public void A_level_given_as_the_section_s_own_value_is_the_default()
    {
        var events = new List<LogEvent>();
        using var logger = Logger(events, new Dictionary<string, string?> { ["Serilog:MinimumLevel"] = "Error" });

        logger.Warning("below");
        logger.Error("at");

        Assert.Equal(["at"], events.Select(e => e.MessageTemplate.Text));
    }

    [Theory]
    [InlineData("plain first", LogEventLevel.Error)]
    [InlineData("default first", LogEventLevel.Fatal)]
    public void A_plain_level_and_a_Default_are_decided_by_the_later_source(string order, LogEventLevel expected)
    {
        Dictionary<string, string?> plain = new() { ["Serilog:MinimumLevel"] = "Fatal" };
        Dictionary<string, string?> named = new() { ["Serilog:MinimumLevel:Default"] = "Error" };
        var configuration = order == "plain first"
            ? new ConfigurationBuilder().AddInMemoryCollection(plain).AddInMemoryCollection(named).Build()
            : new ConfigurationBuilder().AddInMemoryCollection(named).AddInMemoryCollection(plain).Build();
        var events = new List<LogEvent>();
        using var logger = Logger(events, configuration);

        logger.Error("error");
        logger.Fatal("fatal");

        Assert.Equal(expected == LogEventLevel.Error ? ["error", "fatal"] : ["fatal"], events.Select(e => e.MessageTemplate.Text));
    }

    [Fact]
    public void A_reload_moves_a_configured_level_and_a_bad_reloaded_level_keeps_the_one_in_force()
    {
        var events = new List<LogEvent>();
        var source = new Dictionary<string, string?> { ["Serilog:MinimumLevel:Override:MsiProxy.Requests"] = "Warning" };
        var configuration = (IConfigurationRoot)new ConfigurationBuilder().AddInMemoryCollection(source).Build();
        var refused = new List<(string, string?, LogEventLevel)>();
        using var logger = Logger(events, configuration, (key, value, kept) => refused.Add((key, value, kept)));
        var requests = logger.ForContext(Constants.SourceContextPropertyName, "MsiProxy.Requests");

        requests.Information("one");
        configuration["Serilog:MinimumLevel:Override:MsiProxy.Requests"] = "Information";
        configuration.Reload();
        requests.Information("two");
        configuration["Serilog:MinimumLevel:Override:MsiProxy.Requests"] = "Loud";
        configuration.Reload();
        requests.Information("three");

        Assert.Equal(["two", "three"], events.Select(e => e.MessageTemplate.Text));
        Assert.Equal([("Serilog:MinimumLevel:Override:MsiProxy.Requests", "Loud", LogEventLevel.Information)], refused);
    }

    [Theory]
    [InlineData("Serilog:MinimumLevel", "Loud")]
    [InlineData("Serilog:MinimumLevel:Default", "3")]
    [InlineData("Serilog:MinimumLevel:Override:Yarp", "")]
    public void A_bad_level_is_refused_naming_the_key_and_value(string key, string value)
    {
        var refused = Assert.Throws<OptionsValidationException>(() => Logger([], new Dictionary<string, string?> { [key] = value }));

        Assert.Contains($"{key} = '{value}' must be one of Verbose, Debug, Information, Warning, Error, Fatal", refused.Message);
    }

    [Fact]
    public void Every_level_name_in_any_case_and_no_number_or_other_word_is_a_level()
    {
        var names = Gen.Enum<LogEventLevel>().SelectMany(level => Gen.Bool.Array[level.ToString().Length]
            .Select(upper => (level, name: new string([.. level.ToString().Select((c, i) => upper[i] ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c))]))));
        names.Sample(pair => Assert.Equal(pair.level, LogLevels.Parse(" " + pair.name + " ")));

        Gen.Int.Sample(number => Assert.Null(LogLevels.Parse(number.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        Gen.Enum<LogEventLevel>().Array[2, 3].Sample(levels => Assert.Null(LogLevels.Parse(string.Join(",", levels))));
        Gen.String.Where(s => !Enum.GetNames<LogEventLevel>().Contains(s.Trim(), StringComparer.OrdinalIgnoreCase))
            .Sample(other => Assert.Null(LogLevels.Parse(other)));
    }

    private static Logger Logger(List<LogEvent> events, Dictionary<string, string?> settings) =>
        Logger(events, new ConfigurationBuilder().AddInMemoryCollection(settings).Build());

    private static Logger Logger(List<LogEvent> events, IConfiguration configuration, Action<string, string?, LogEventLevel>? refusedReload = null) =>
        new LoggerConfiguration()
            .MinimumLevel.Information()
            .MinimumLevel.Override("Yarp", LogEventLevel.Warning)
            .WithConfiguredLevels(configuration, refusedReload ?? ((_, _, _) => { }))
            .WriteTo.Sink(new Collect(events))
            .CreateLogger();

    private sealed class Collect(List<LogEvent> events) : ILogEventSink
    {
        public void Emit(LogEvent logEvent) => events.Add(logEvent);
    }
}
