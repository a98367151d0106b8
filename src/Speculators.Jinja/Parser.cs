using Speculators.Jinja.Runtime;

namespace Speculators.Jinja;

/// <summary>jinja2's recursive-descent parser (same grammar and precedence), producing our AST.</summary>
internal sealed class Parser
{
    readonly List<Token> _t;
    readonly SourceMap _map;
    int _i;
    int _depth;
    readonly List<string> _tagStack = new();
    readonly List<string[]> _endTokenStack = new();
    const int MaxNesting = 200;

    public Parser(List<Token> tokens, SourceMap map) { _t = tokens; _map = map; }

    Token Cur => _t[_i];
    Token Peek(int k = 1) => _t[Math.Min(_i + k, _t.Count - 1)];
    Token Next() { var t = _t[_i]; if (_i < _t.Count - 1) _i++; return t; }

    T At<T>(T node, Token tok) where T : Node
    {
        (node.Line, node.Col) = _map.Locate(tok.Pos);
        return node;
    }

    T At<T>(T node, Node other) where T : Node
    {
        node.Line = other.Line; node.Col = other.Col;
        return node;
    }

    JinjaException Fail(string msg, Token? tok = null)
    {
        var (line, col) = _map.Locate((tok ?? Cur).Pos);
        return new JinjaException("TemplateSyntaxError", msg, line, col);
    }

    static string Describe(Token t) => t.Type switch
    {
        Tok.Name => (string)t.Value!,
        Tok.Data => "template data / text",
        Tok.BlockBegin => "begin of statement block",
        Tok.BlockEnd => "end of statement block",
        Tok.VarBegin => "begin of print statement",
        Tok.VarEnd => "end of print statement",
        Tok.Eof => "end of template",
        Tok.String => "string",
        Tok.Integer => "integer",
        Tok.Float => "float",
        _ => t.Value as string ?? t.Type.ToString(),
    };

    static string DescribeType(Tok t) => t switch
    {
        Tok.BlockEnd => "end of statement block",
        Tok.VarEnd => "end of print statement",
        Tok.BlockBegin => "begin of statement block",
        Tok.VarBegin => "begin of print statement",
        Tok.Name => "name",
        Tok.RParen => ")", Tok.RBracket => "]", Tok.RBrace => "}", Tok.LParen => "(", Tok.LBracket => "[", Tok.Colon => ":",
        Tok.Comma => ",", Tok.Assign => "=", Tok.Dot => ".",
        _ => t.ToString(),
    };

    Token Expect(Tok type)
    {
        if (Cur.Type != type)
        {
            if (Cur.Type == Tok.Eof) throw Fail($"unexpected end of template, expected {Py.Repr(DescribeType(type))}.");
            throw Fail($"expected token {Py.Repr(DescribeType(type))}, got {Py.Repr(Describe(Cur))}");
        }
        return Next();
    }

    Token ExpectName(string name)
    {
        if (!Cur.IsName(name))
        {
            if (Cur.Type == Tok.Eof) throw Fail($"unexpected end of template, expected {Py.Repr(name)}.");
            throw Fail($"expected token {Py.Repr(name)}, got {Py.Repr(Describe(Cur))}");
        }
        return Next();
    }

    bool SkipIf(Tok type)
    {
        if (Cur.Type != type) return false;
        Next();
        return true;
    }

    bool SkipName(string name)
    {
        if (!Cur.IsName(name)) return false;
        Next();
        return true;
    }

    void Enter()
    {
        if (++_depth > MaxNesting) throw Fail($"template nested too deeply (more than {MaxNesting} levels)");
        if (!System.Runtime.CompilerServices.RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw Fail("template nested too deeply for the thread's stack");
    }

    // ------------------------------------------------------------- statements

    public Stmt[] ParseTemplate() => Subparse(null);

    Stmt[] Subparse(string[]? endTokens)
    {
        var body = new List<Stmt>();
        if (endTokens != null) _endTokenStack.Add(endTokens);
        try
        {
            while (Cur.Type != Tok.Eof)
            {
                var tok = Cur;
                switch (tok.Type)
                {
                    case Tok.Data:
                        body.Add(At(new TextStmt((string)tok.Value!), tok));
                        Next();
                        break;
                    case Tok.VarBegin:
                    {
                        Next();
                        var e = ParseTuple(withCondexpr: true);
                        Expect(Tok.VarEnd);
                        body.Add(At(new PrintStmt(e), e));
                        break;
                    }
                    case Tok.BlockBegin:
                        Next();
                        if (endTokens != null && Cur.Type == Tok.Name && Array.IndexOf(endTokens, (string)Cur.Value!) >= 0)
                            return body.ToArray();
                        body.AddRange(ParseStatement());
                        Expect(Tok.BlockEnd);
                        break;
                    default:
                        throw Fail("internal parsing error: unexpected " + Describe(tok));
                }
            }
        }
        finally
        {
            if (endTokens != null) _endTokenStack.RemoveAt(_endTokenStack.Count - 1);
        }
        return body.ToArray();
    }

    Stmt[] ParseStatements(string[] endTokens, bool dropNeedle)
    {
        SkipIf(Tok.Colon);
        Expect(Tok.BlockEnd);
        Enter();
        var body = Subparse(endTokens);
        _depth--;
        if (Cur.Type == Tok.Eof) throw FailEof(endTokens);
        if (dropNeedle) Next();
        return body;
    }

    JinjaException FailUnknown(string? name, List<string[]> stack, Token tok)
    {
        var expected = new HashSet<string>(stack.SelectMany(s => s));
        string? looking = stack.Count > 0 ? string.Join(" or ", stack[^1].Select(Py.Repr)) : null;
        var msg = new List<string> { name == null ? "Unexpected end of template." : $"Encountered unknown tag {Py.Repr(name)}." };
        if (looking != null)
        {
            if (name != null && expected.Contains(name))
                msg.Add($"You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for {looking}.");
            else
                msg.Add($"Jinja was looking for the following tags: {looking}.");
        }
        if (_tagStack.Count > 0) msg.Add($"The innermost block that needs to be closed is {Py.Repr(_tagStack[^1])}.");
        return Fail(string.Join(" ", msg), tok);
    }

    JinjaException FailEof(string[]? endTokens)
    {
        var stack = new List<string[]>(_endTokenStack);
        if (endTokens != null) stack.Add(endTokens);
        return FailUnknown(null, stack, Cur);
    }

    IEnumerable<Stmt> ParseStatement()
    {
        var tok = Cur;
        if (tok.Type != Tok.Name) throw Fail("tag name expected", tok);
        string name = (string)tok.Value!;
        _tagStack.Add(name);
        bool pop = true;
        try
        {
            switch (name)
            {
                case "for": return [ParseFor()];
                case "if": return [ParseIf()];
                case "set": return [ParseSet()];
                case "macro": return [ParseMacro()];
                case "call": return [ParseCallBlock()];
                case "filter": return [ParseFilterBlock()];
                case "with": return [ParseWith()];
                case "block": return [ParseBlock()];
                case "print": return ParsePrint();
                case "generation":
                {
                    Next();
                    var body = ParseStatements(["endgeneration"], true);
                    return [At(new GenerationStmt(body), tok)];
                }
                case "break": Next(); return [At(new BreakStmt(), tok)];
                case "continue": Next(); return [At(new ContinueStmt(), tok)];
                case "extends" or "include" or "import" or "from":
                    throw Fail($"{Py.Repr(name)} is not supported: chat templates are rendered without a template loader", tok);
                case "autoescape":
                    throw Fail("'autoescape' blocks are not supported (chat templates render with autoescaping off)", tok);
            }
            _tagStack.RemoveAt(_tagStack.Count - 1);
            pop = false;
            throw FailUnknown(name, _endTokenStack, tok);
        }
        finally
        {
            if (pop) _tagStack.RemoveAt(_tagStack.Count - 1);
        }
    }

    ForStmt ParseFor()
    {
        var tok = ExpectName("for");
        var target = ParseAssignTarget(extraEndRules: ["in"]);
        ExpectName("in");
        var iter = ParseTuple(withCondexpr: false, extraEndRules: ["recursive"]);
        Expr? test = null;
        if (SkipName("if")) test = ParseExpression();
        bool recursive = SkipName("recursive");
        var body = ParseStatements(["endfor", "else"], false);
        Stmt[]? @else = null;
        if ((string)Next().Value! != "endfor") @else = ParseStatements(["endfor"], true);
        return At(new ForStmt(target, iter, test, recursive, body, @else), tok);
    }

    IfStmt ParseIf()
    {
        var tok = ExpectName("if");
        var branches = new List<(Expr, Stmt[])>();
        Stmt[]? @else = null;
        while (true)
        {
            var test = ParseTuple(withCondexpr: false);
            var body = ParseStatements(["elif", "else", "endif"], false);
            branches.Add((test, body));
            var t = Next();
            if (t.IsName("elif")) continue;
            if (t.IsName("else")) @else = ParseStatements(["endif"], true);
            break;
        }
        return At(new IfStmt(branches.ToArray(), @else), tok);
    }

    Stmt ParseSet()
    {
        var tok = Next();
        var target = ParseAssignTarget(withNamespace: true);
        if (SkipIf(Tok.Assign))
        {
            var e = ParseTuple();
            return At(new SetStmt(target, e), tok);
        }
        var filter = ParseFilter(null, false);
        var body = ParseStatements(["endset"], true);
        return At(new SetBlockStmt(target, filter, body), tok);
    }

    WithStmt ParseWith()
    {
        var tok = Next();
        var assigns = new List<(Target, Expr)>();
        while (Cur.Type != Tok.BlockEnd)
        {
            if (assigns.Count > 0) Expect(Tok.Comma);
            var target = ParseAssignTarget();
            Expect(Tok.Assign);
            assigns.Add((target, ParseExpression()));
        }
        var body = ParseStatements(["endwith"], true);
        return At(new WithStmt(assigns.ToArray(), body), tok);
    }

    NamedBlockStmt ParseBlock()
    {
        var tok = Next();
        string name = (string)Expect(Tok.Name).Value!;
        bool scoped = SkipName("scoped");
        SkipName("required");
        if (Cur.Type == Tok.Sub)
            throw Fail("Block names in Jinja have to be valid Python identifiers and may not contain hyphens, use an underscore instead.");
        var body = ParseStatements(["endblock"], true);
        SkipName(name);
        return At(new NamedBlockStmt(name, scoped, body), tok);
    }

    MacroParam[] ParseSignature()
    {
        var ps = new List<MacroParam>();
        bool defaults = false;
        Expect(Tok.LParen);
        while (Cur.Type != Tok.RParen)
        {
            if (ps.Count > 0) Expect(Tok.Comma);
            var nameTok = Expect(Tok.Name);
            Expr? dflt = null;
            if (SkipIf(Tok.Assign)) { dflt = ParseExpression(); defaults = true; }
            else if (defaults) throw Fail("non-default argument follows default argument");
            ps.Add(new MacroParam((string)nameTok.Value!, dflt));
        }
        Expect(Tok.RParen);
        return ps.ToArray();
    }

    MacroStmt ParseMacro()
    {
        var tok = Next();
        var nameTok = Expect(Tok.Name);
        var ps = ParseSignature();
        var body = ParseStatements(["endmacro"], true);
        var target = At(new NameTarget((string)nameTok.Value!), nameTok);
        return At(new MacroStmt(new MacroDef((string)nameTok.Value!, ps, body), target), tok);
    }

    CallBlockStmt ParseCallBlock()
    {
        var tok = Next();
        var ps = Cur.Type == Tok.LParen ? ParseSignature() : [];
        var call = ParseExpression();
        if (call is not CallExpr ce) throw Fail("expected call", tok);
        var body = ParseStatements(["endcall"], true);
        return At(new CallBlockStmt(new MacroDef("caller", ps, body), ce), tok);
    }

    FilterBlockStmt ParseFilterBlock()
    {
        var tok = Next();
        var filter = ParseFilter(null, true)!;
        var body = ParseStatements(["endfilter"], true);
        return At(new FilterBlockStmt(filter, body), tok);
    }

    IEnumerable<Stmt> ParsePrint()
    {
        Next();
        var r = new List<Stmt>();
        while (Cur.Type != Tok.BlockEnd)
        {
            if (r.Count > 0) Expect(Tok.Comma);
            var e = ParseExpression();
            r.Add(At(new PrintStmt(e), e));
        }
        return r;
    }

    Target ParseAssignTarget(string[]? extraEndRules = null, bool withNamespace = false)
    {
        var tok = Cur;
        var e = ParseTuple(simplified: true, extraEndRules: extraEndRules, withNamespace: withNamespace);
        return ToTarget(e, tok);
    }

    Target ToTarget(Expr e, Token tok)
    {
        switch (e)
        {
            case NameExpr n:
                if (n.Name is "true" or "false" or "none" or "True" or "False" or "None") throw Fail($"can't assign to {Py.Repr("const")}", tok);
                return At(new NameTarget(n.Name), n);
            case NsRefExpr ns:
                return At(new NsTarget(At(new NameExpr(ns.Ns), ns), ns.Attr), ns);
            case TupleExpr t:
                return At(new TupleTarget(t.Items.Select(x => ToTarget(x, tok)).ToArray()), t);
        }
        string kind = e switch { ConstExpr => "const", ListExpr => "list", DictExpr => "dict", _ => e.GetType().Name.Replace("Expr", "").ToLowerInvariant() };
        throw Fail($"can't assign to {Py.Repr(kind)}", tok);
    }

    // ------------------------------------------------------------- expressions

    Expr ParseExpression(bool withCondexpr = true) => withCondexpr ? ParseCondExpr() : ParseOr();

    Expr ParseCondExpr()
    {
        var start = Cur;
        var expr1 = ParseOr();
        while (SkipName("if"))
        {
            var expr2 = ParseOr();
            Expr? expr3 = SkipName("else") ? ParseCondExpr() : null;
            expr1 = At(new CondExpr(expr2, expr1, expr3), start);
            start = Cur;
        }
        return expr1;
    }

    Expr ParseOr()
    {
        var start = Cur;
        var left = ParseAnd();
        while (SkipName("or"))
        {
            var right = ParseAnd();
            left = At(new OrExpr(left, right), start);
            start = Cur;
        }
        return left;
    }

    Expr ParseAnd()
    {
        var start = Cur;
        var left = ParseNot();
        while (SkipName("and"))
        {
            var right = ParseNot();
            left = At(new AndExpr(left, right), start);
            start = Cur;
        }
        return left;
    }

    Expr ParseNot()
    {
        if (Cur.IsName("not"))
        {
            var tok = Next();
            Enter();
            var e = ParseNot();
            _depth--;
            return At(new NotExpr(e), tok);
        }
        return ParseCompare();
    }

    Expr ParseCompare()
    {
        var start = Cur;
        var expr = ParseMath1();
        var ops = new List<(CmpKind, Expr)>();
        while (true)
        {
            var t = Cur.Type;
            CmpKind? k = t switch
            {
                Tok.Eq => CmpKind.Eq, Tok.Ne => CmpKind.Ne, Tok.Lt => CmpKind.Lt, Tok.LtEq => CmpKind.LtEq,
                Tok.Gt => CmpKind.Gt, Tok.GtEq => CmpKind.GtEq, _ => null,
            };
            if (k != null) { Next(); ops.Add((k.Value, ParseMath1())); }
            else if (SkipName("in")) ops.Add((CmpKind.In, ParseMath1()));
            else if (Cur.IsName("not") && Peek().IsName("in")) { Next(); Next(); ops.Add((CmpKind.NotIn, ParseMath1())); }
            else break;
        }
        if (ops.Count == 0) return expr;
        return At(new CompareExpr(expr, ops.ToArray()), start);
    }

    Expr ParseMath1()
    {
        var start = Cur;
        var left = ParseConcat();
        while (Cur.Type is Tok.Add or Tok.Sub)
        {
            var op = Next().Type == Tok.Add ? BinOp.Add : BinOp.Sub;
            var right = ParseConcat();
            left = At(new BinExpr(op, left, right), start);
            start = Cur;
        }
        return left;
    }

    Expr ParseConcat()
    {
        var start = Cur;
        var args = new List<Expr> { ParseMath2() };
        while (SkipIf(Tok.Tilde)) args.Add(ParseMath2());
        return args.Count == 1 ? args[0] : At(new ConcatExpr(args.ToArray()), start);
    }

    Expr ParseMath2()
    {
        var start = Cur;
        var left = ParsePow();
        while (Cur.Type is Tok.Mul or Tok.Div or Tok.FloorDiv or Tok.Mod)
        {
            var op = Next().Type switch { Tok.Mul => BinOp.Mul, Tok.Div => BinOp.Div, Tok.FloorDiv => BinOp.FloorDiv, _ => BinOp.Mod };
            var right = ParsePow();
            left = At(new BinExpr(op, left, right), start);
            start = Cur;
        }
        return left;
    }

    Expr ParsePow()
    {
        var start = Cur;
        var left = ParseUnary();
        while (SkipIf(Tok.Pow))
        {
            var right = ParseUnary();
            left = At(new BinExpr(BinOp.Pow, left, right), start);
            start = Cur;
        }
        return left;
    }

    Expr ParseUnary(bool withFilter = true)
    {
        var tok = Cur;
        Expr node;
        Enter();
        if (tok.Type == Tok.Sub) { Next(); node = At(new UnaryExpr(ParseUnary(false), true), tok); }
        else if (tok.Type == Tok.Add) { Next(); node = At(new UnaryExpr(ParseUnary(false), false), tok); }
        else node = ParsePrimary();
        node = ParsePostfix(node);
        if (withFilter) node = ParseFilterExpr(node);
        _depth--;
        return node;
    }

    Expr ParsePrimary(bool withNamespace = false)
    {
        var tok = Cur;
        switch (tok.Type)
        {
            case Tok.Name:
            {
                Next();
                string v = (string)tok.Value!;
                if (v is "true" or "True") return At(new ConstExpr(Py.True), tok);
                if (v is "false" or "False") return At(new ConstExpr(Py.False), tok);
                if (v is "none" or "None") return At(new ConstExpr(null), tok);
                if (withNamespace && Cur.Type == Tok.Dot)
                {
                    Next();
                    var attr = Expect(Tok.Name);
                    return At(new NsRefExpr(v, (string)attr.Value!), tok);
                }
                return At(new NameExpr(v), tok);
            }
            case Tok.String:
            {
                Next();
                var s = (string)tok.Value!;
                if (Cur.Type == Tok.String)
                {
                    var sb = new System.Text.StringBuilder(s);
                    while (Cur.Type == Tok.String) sb.Append((string)Next().Value!);
                    s = sb.ToString();
                }
                return At(new ConstExpr(s), tok);
            }
            case Tok.Integer:
            case Tok.Float:
                Next();
                return At(new ConstExpr(tok.Value), tok);
            case Tok.LParen:
            {
                Next();
                Enter();
                var e = ParseTuple(explicitParentheses: true);
                _depth--;
                Expect(Tok.RParen);
                return e;
            }
            case Tok.LBracket: return ParseList();
            case Tok.LBrace: return ParseDict();
        }
        if (tok.Type == Tok.Eof) throw Fail("unexpected end of template", tok);
        throw Fail($"unexpected {Py.Repr(Describe(tok))}", tok);
    }

    bool IsTupleEnd(string[]? extraEndRules)
    {
        if (Cur.Type is Tok.VarEnd or Tok.BlockEnd or Tok.RParen) return true;
        return extraEndRules != null && Cur.Type == Tok.Name && Array.IndexOf(extraEndRules, (string)Cur.Value!) >= 0;
    }

    Expr ParseTuple(bool simplified = false, bool withCondexpr = true, string[]? extraEndRules = null,
        bool explicitParentheses = false, bool withNamespace = false)
    {
        var start = Cur;
        var args = new List<Expr>();
        bool isTuple = false;
        while (true)
        {
            if (args.Count > 0) Expect(Tok.Comma);
            if (IsTupleEnd(extraEndRules)) break;
            args.Add(simplified ? ParsePrimary(withNamespace) : ParseExpression(withCondexpr));
            if (Cur.Type == Tok.Comma) isTuple = true;
            else break;
        }
        if (!isTuple)
        {
            if (args.Count > 0) return args[0];
            if (!explicitParentheses)
            {
                if (Cur.Type == Tok.Eof) throw Fail("unexpected end of template", Cur);
                throw Fail($"Expected an expression, got {Py.Repr(Describe(Cur))}");
            }
        }
        return At(new TupleExpr(args.ToArray()), start);
    }

    Expr ParseList()
    {
        var tok = Expect(Tok.LBracket);
        var items = new List<Expr>();
        Enter();
        while (Cur.Type != Tok.RBracket)
        {
            if (items.Count > 0) Expect(Tok.Comma);
            if (Cur.Type == Tok.RBracket) break;
            items.Add(ParseExpression());
        }
        _depth--;
        Expect(Tok.RBracket);
        return At(new ListExpr(items.ToArray()), tok);
    }

    Expr ParseDict()
    {
        var tok = Expect(Tok.LBrace);
        var items = new List<(Expr, Expr)>();
        Enter();
        while (Cur.Type != Tok.RBrace)
        {
            if (items.Count > 0) Expect(Tok.Comma);
            if (Cur.Type == Tok.RBrace) break;
            var key = ParseExpression();
            Expect(Tok.Colon);
            var value = ParseExpression();
            items.Add((key, value));
        }
        _depth--;
        Expect(Tok.RBrace);
        return At(new DictExpr(items.ToArray()), tok);
    }

    Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (Cur.Type is Tok.Dot or Tok.LBracket) node = ParseSubscript(node);
            else if (Cur.Type == Tok.LParen) node = ParseCall(node);
            else break;
        }
        return node;
    }

    Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (Cur.Type == Tok.Pipe) node = ParseFilter(node, false)!;
            else if (Cur.IsName("is")) node = ParseTest(node);
            else if (Cur.Type == Tok.LParen) node = ParseCall(node);
            else break;
        }
        return node;
    }

    Expr ParseSubscript(Expr node)
    {
        var tok = Next();
        if (tok.Type == Tok.Dot)
        {
            var attr = Cur;
            Next();
            if (attr.Type == Tok.Name) return At(new GetAttrExpr(node, (string)attr.Value!), tok);
            if (attr.Type != Tok.Integer) throw Fail("expected name or number", attr);
            return At(new GetItemExpr(node, At(new ConstExpr(attr.Value), attr)), tok);
        }
        var args = new List<Expr>();
        Enter();
        while (Cur.Type != Tok.RBracket)
        {
            if (args.Count > 0) Expect(Tok.Comma);
            args.Add(ParseSubscribed());
        }
        _depth--;
        Expect(Tok.RBracket);
        var arg = args.Count == 1 ? args[0] : At(new TupleExpr(args.ToArray()), tok);
        return At(new GetItemExpr(node, arg), tok);
    }

    Expr ParseSubscribed()
    {
        var tok = Cur;
        var parts = new List<Expr?>();
        if (Cur.Type == Tok.Colon) { Next(); parts.Add(null); }
        else
        {
            var node = ParseExpression();
            if (Cur.Type != Tok.Colon) return node;
            Next();
            parts.Add(node);
        }
        if (Cur.Type == Tok.Colon) parts.Add(null);
        else if (Cur.Type is not (Tok.RBracket or Tok.Comma)) parts.Add(ParseExpression());
        else parts.Add(null);
        if (Cur.Type == Tok.Colon)
        {
            Next();
            parts.Add(Cur.Type is not (Tok.RBracket or Tok.Comma) ? ParseExpression() : null);
        }
        else parts.Add(null);
        return At(new SliceExpr(parts[0], parts[1], parts[2]), tok);
    }

    ArgList ParseCallArgs()
    {
        var tok = Expect(Tok.LParen);
        var pos = new List<Expr>();
        var kw = new List<(string, Expr)>();
        Expr? dynArgs = null, dynKwargs = null;
        bool requireComma = false;
        void Ensure(bool ok) { if (!ok) throw Fail("invalid syntax for function call expression", tok); }
        Enter();
        while (Cur.Type != Tok.RParen)
        {
            if (requireComma)
            {
                Expect(Tok.Comma);
                if (Cur.Type == Tok.RParen) break;
            }
            if (Cur.Type == Tok.Mul)
            {
                Ensure(dynArgs == null && dynKwargs == null);
                Next();
                dynArgs = ParseExpression();
            }
            else if (Cur.Type == Tok.Pow)
            {
                Ensure(dynKwargs == null);
                Next();
                dynKwargs = ParseExpression();
            }
            else if (Cur.Type == Tok.Name && Peek().Type == Tok.Assign)
            {
                Ensure(dynKwargs == null);
                string key = (string)Next().Value!;
                Next();
                kw.Add((key, ParseExpression()));
            }
            else
            {
                Ensure(dynArgs == null && dynKwargs == null && kw.Count == 0);
                pos.Add(ParseExpression());
            }
            requireComma = true;
        }
        _depth--;
        Expect(Tok.RParen);
        if (pos.Count == 0 && kw.Count == 0 && dynArgs == null && dynKwargs == null) return ArgList.Empty;
        return new ArgList(pos.ToArray(), kw.ToArray(), dynArgs, dynKwargs);
    }

    Expr ParseCall(Expr node)
    {
        var args = ParseCallArgs();
        return At(new CallExpr(node, args), node);
    }

    FilterExpr? ParseFilter(Expr? node, bool startInline)
    {
        FilterExpr? result = null;
        while (Cur.Type == Tok.Pipe || startInline)
        {
            if (!startInline) Next();
            var tok = Expect(Tok.Name);
            string name = (string)tok.Value!;
            while (Cur.Type == Tok.Dot)
            {
                Next();
                name += "." + (string)Expect(Tok.Name).Value!;
            }
            var args = Cur.Type == Tok.LParen ? ParseCallArgs() : ArgList.Empty;
            result = At(new FilterExpr(node, name, args), tok);
            node = result;
            startInline = false;
        }
        return result;
    }

    Expr ParseTest(Expr node)
    {
        var tok = Next();
        bool negated = SkipName("not");
        string name = (string)Expect(Tok.Name).Value!;
        while (Cur.Type == Tok.Dot)
        {
            Next();
            name += "." + (string)Expect(Tok.Name).Value!;
        }
        ArgList args;
        if (Cur.Type == Tok.LParen) args = ParseCallArgs();
        else if ((Cur.Type is Tok.Name or Tok.String or Tok.Integer or Tok.Float or Tok.LParen or Tok.LBracket or Tok.LBrace)
                 && !(Cur.IsName("else") || Cur.IsName("or") || Cur.IsName("and")))
        {
            if (Cur.IsName("is")) throw Fail("You cannot chain multiple tests with is");
            var arg = ParsePostfix(ParsePrimary());
            args = new ArgList([arg], [], null, null);
        }
        else args = ArgList.Empty;
        Expr result = At(new TestExpr(node, name, args), tok);
        if (negated) result = At(new NotExpr(result), tok);
        return result;
    }
}

/// <summary><c>ns.attr</c> on the left of a set; only valid as an assignment target.</summary>
internal sealed class NsRefExpr : Expr
{
    public readonly string Ns, Attr;
    public NsRefExpr(string ns, string attr) { Ns = ns; Attr = attr; }
    public override object? Eval(RenderState st, Frame f) => throw Py.RuntimeError("namespace references can only be assigned to");
}
