namespace Speculators.Jinja.Tests;

/// <summary>Errors: positions (line and column, 1-based), messages, sandbox and resource limits.</summary>
public class ErrorTests
{
    static JinjaException Fails(string src, Dictionary<string, object?>? vars = null) =>
        Assert.Throws<JinjaException>(() => Template.Parse(src).Render(vars ?? new()));

    [Fact]
    public void SyntaxErrorPointsAtTheOffendingToken()
    {
        var e = Fails("abc\n  {{ a ! b }}");
        Assert.Equal("TemplateSyntaxError", e.ErrorType);
        Assert.Equal("unexpected char '!' at 11", e.Message);
        Assert.Equal((2, 8), (e.Line, e.Column));
        Assert.Equal("TemplateSyntaxError: unexpected char '!' at 11 (line 2, column 8)", e.Describe());
    }

    [Fact]
    public void UnclosedBlockReportsWhatWasExpected()
    {
        var e = Fails("{% for m in messages %}\n{% if m %}\nx\n{% endfor %}");
        Assert.Equal("TemplateSyntaxError", e.ErrorType);
        Assert.StartsWith("Encountered unknown tag 'endfor'. You probably made a nesting mistake.", e.Message);
        Assert.Equal((4, 4), (e.Line, e.Column));
    }

    [Fact]
    public void RaiseExceptionMessageIsVerbatimAndLocated()
    {
        const string msg = "Conversation roles must alternate user/assistant/user/assistant/...";
        var e = Fails("{% for m in [1] %}\n    {{- raise_exception('" + msg + "') }}\n{% endfor %}");
        Assert.Equal("TemplateError", e.ErrorType);
        Assert.Equal(msg, e.Message);
        Assert.Equal((2, 9), (e.Line, e.Column));
    }

    [Fact]
    public void TypeErrorPointsAtTheOperation()
    {
        var e = Fails("line one\n{% set x = 'a' %}{{ x + {} }}");
        Assert.Equal("TypeError: can only concatenate str (not \"dict\") to str", e.ErrorType + ": " + e.Message);
        Assert.Equal((2, 21), (e.Line, e.Column)); // the expression starts at x
    }

    [Fact]
    public void UndefinedAttributeOfUndefinedRaises()
    {
        var e = Fails("{{ message.content.strip() }}", new() { ["message"] = new Dictionary<string, object?>() });
        Assert.Equal("UndefinedError: 'dict object' has no attribute 'content'", e.ErrorType + ": " + e.Message);
        Assert.Equal((1, 19), (e.Line, e.Column));
    }

    [Fact]
    public void ErrorInsideAMacroIsReportedWhereItHappens()
    {
        var e = Fails("{% macro m(v) %}\n\n  {{ v.a.b }}\n{% endmacro %}\n{{ m({}) }}");
        Assert.Equal("UndefinedError", e.ErrorType);
        Assert.Equal(3, e.Line);
    }

    [Theory]
    [InlineData("{{ [1].append(2) }}", "access to attribute 'append' of 'list' object is unsafe.")]
    [InlineData("{% set d = {} %}{{ d.update({'a': 1}) }}", "access to attribute 'update' of 'dict' object is unsafe.")]
    [InlineData("{{ {'a': 1}.pop('a') }}", "access to attribute 'pop' of 'dict' object is unsafe.")]
    [InlineData("{{ {'a': 1}.setdefault('b', 2) }}", "access to attribute 'setdefault' of 'dict' object is unsafe.")]
    [InlineData("{{ [3, 1].sort() }}", "access to attribute 'sort' of 'list' object is unsafe.")]
    [InlineData("{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str' object is unsafe.")]
    [InlineData("{{ messages.__len__() }}", "access to attribute '__len__' of 'list' object is unsafe.")]
    public void SandboxBlocksMutationAndPrivateAttributes(string src, string message)
    {
        var e = Fails(src, new() { ["messages"] = new List<object?>() });
        Assert.Equal("SecurityError", e.ErrorType);
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void NoDotNetReflectionIsReachable()
    {
        // Values are template values, never .NET objects: .NET members simply do not exist.
        Assert.Equal("||", Template.Parse("{{ 'x'.GetType }}|{{ messages.Count }}|{{ (1).ToString }}")
            .Render(new Dictionary<string, object?> { ["messages"] = new List<object?> { 1 } }).Text);
        var e = Fails("{{ 'x'.GetType() }}");
        Assert.Equal("UndefinedError: 'str object' has no attribute 'GetType'", e.ErrorType + ": " + e.Message);
    }

    [Fact]
    public void UnboundedRecursionIsAnErrorNotACrash()
    {
        var e = Fails("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
        Assert.Equal("RecursionError", e.ErrorType);
    }

    [Fact]
    public void RecursionOnASmallStackIsAnErrorNotACrash()
    {
        // 198 nested calls are within jinja2's limit but need more stack than 512 KB: the engine stops
        // with RecursionError before the thread overflows (a .NET stack overflow would kill the process).
        const string src = "{% macro f(n) %}{% for i in [1] %}{% if n > 0 %}{% set x = [n]|map('string')|join(',') ~ 'a' %}" +
                           "{{ (f(n - 1) ~ x)|trim }}{% endif %}{% endfor %}{% endmacro %}{{ f(198) }}";
        JinjaException? error = null;
        var t = new Thread(() =>
        {
            try { Template.Parse(src).Render(new Dictionary<string, object?>()); }
            catch (JinjaException e) { error = e; }
        }, 512 * 1024);
        t.Start();
        t.Join();
        Assert.Equal("RecursionError", error?.ErrorType);
    }

    [Fact]
    public void DeeplyNestedExpressionsAreRejected()
    {
        var e = Fails("{{ " + new string('(', 1000) + "1" + new string(')', 1000) + " }}");
        Assert.Equal("TemplateSyntaxError", e.ErrorType);
        Assert.Contains("nested too deeply", e.Message);
    }

    [Fact]
    public void HugeRangesAreBlockedLikeTheSandbox()
    {
        var e = Fails("{% for i in range(100001) %}{% endfor %}");
        Assert.Equal("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).", e.ErrorType + ": " + e.Message);
        Assert.Equal("100000", Template.Parse("{{ range(100000)|length }}").Render(new Dictionary<string, object?>()).Text);
    }

    [Fact]
    public void UnsupportedLoaderTagsFailClearly()
    {
        var e = Fails("{% include 'other.jinja' %}");
        Assert.Equal("TemplateSyntaxError", e.ErrorType);
        Assert.Contains("loader", e.Message);
    }

    [Fact]
    public void IntegersBeyondSixtyFourBitsFailInsteadOfWrapping()
    {
        var e = Fails("{{ 2 ** 64 }}");
        Assert.Equal("OverflowError", e.ErrorType);
        Assert.Equal("9223372036854775807", Template.Parse("{{ 2 ** 62 - 1 + 2 ** 62 }}").Render(new Dictionary<string, object?>()).Text);
    }
}
