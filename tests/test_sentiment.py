"""The lexicon sentiment scorer (engine/ruleset/sentiment.py) on realistic customer messages.

Rules compare the score against thresholds (-0.3 clearly unhappy, -0.5 angry, -0.6 very angry,
>= 0 for the "simple question" rule), so these tests pin signs and orderings rather than exact
values, plus a few exact scores for the misreadings fixed here (each case says what it was)."""

from __future__ import annotations

import pytest

from engine.ruleset.sentiment import analyse, normalise, score


def sign(value: float) -> int:
    return (value > 0) - (value < 0)


def terms(text: str) -> list[str]:
    return [term for term, _ in analyse(text).hits]


# ---- the five misreadings found while writing rule fixtures -------------------------------------

def test_business_trip_is_not_bad() -> None:
    # was -0.459: 出差 read as 差 ("bad")
    assert score("我下周出差，订单能改地址吗？") == 0
    assert score("出差回来发现包裹破损了") == score("回来发现包裹破损了") < 0  # 破损 still counts


def test_polite_mafan_is_neutral_but_too_much_hassle_is_not() -> None:
    # was -0.459: "麻烦帮我查一下" (please check for me) read as 烦 ("annoyed")
    assert score("麻烦帮我查一下") == 0
    assert score("麻烦帮我查一下物流，谢谢") > 0
    assert score("给您添麻烦了") == 0
    # graded, 麻烦 is a hassle
    assert score("太麻烦了") < -0.5
    assert score("退个货这么麻烦") < -0.3
    assert score("麻烦死了") < -0.5
    assert score("太麻烦了") < score("有点麻烦") < 0


def test_shi_bu_shi_question_does_not_negate() -> None:
    # was +0.279: 不 of 是不是 negated 慢, so the complaint came out positive
    assert score("是不是太慢了") == score("太慢了") < -0.3
    assert score("你们是不是骗子") < -0.5  # was +0.502
    assert score("是不是你们系统坏了") < 0
    assert score("有没有人管管啊") == 0
    assert score("满不满意都要评价吗") == 0  # was -0.494: 不满意 inside 满不满意


def test_hao_before_a_sentiment_word_is_an_intensifier() -> None:
    # was 0.0: 好 (+1, "good") cancelled 慢 (-1)
    assert score("物流好慢") < score("物流慢") < 0
    assert score("好失望啊") < score("失望") < 0
    assert score("好开心") > score("开心") > 0
    assert score("最近好慢") < 0  # 最近 (recently) is not 最 (most)
    assert score("好贵") < 0 and score("贵公司") == 0
    assert score("好的，谢谢") > 0  # 好的 (OK) is still mildly positive


def test_a_mild_complaint_is_milder_than_a_plain_one() -> None:
    # 不太满意 was -0.502, more negative than 不满意 (-0.494)
    ladder = ["非常满意", "满意", "一般", "不太满意", "不满意", "非常不满意"]
    scores = [score(text) for text in ladder]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores), scores
    assert score("一般") == 0
    assert -0.5 < score("不太满意") <= -0.3  # unhappy (P1 in public) but not "angry"
    assert score("不是很满意") == score("不太满意")
    assert score("不满意") < score("我真的不太满意") < score("不太满意")
    assert score("not good") < score("not very good") < 0


# ---- more misreadings of the same kinds ---------------------------------------------------------

@pytest.mark.parametrize("text", [
    "差价什么时候退？", "我想补差价换大一号", "差点就错过了签收", "您好，请问退款什么时候到账？",
    "满意度调查我就不填了", "我太太的订单还没发货", "请问一般几天能到？", "多久能到？",
    "我不知道为什么快递显示已签收", "别人的都到了，我的还没到", "可以开发票吗",
])
def test_neutral_compounds_and_questions(text: str) -> None:
    assert score(text) == 0, (text, analyse(text).hits)


def test_greetings_are_not_praise() -> None:
    assert score("你好") == score("您好") == 0
    assert score("你好，我的快递三天了还没到，好着急") < -0.3  # was +0.128


def test_prohibitions_keep_a_complaint_negative() -> None:
    assert score("请不要敷衍我") < -0.5  # was +0.436
    assert score("别再推脱了，赶紧退款") < -0.3  # was +0.361
    assert score("Don't waste my time") < -0.3  # was +0.329
    assert score("别担心，没问题") > 0  # a prohibited worry reassures
    assert score("不敷衍") > 0  # plain negation still flips


def test_negation_scope() -> None:
    assert score("客服很不耐烦") < -0.5  # was +0.450: 不 + 耐 + 烦 flipped 烦
    assert score("没那么差") > 0 and score("不算太差") > 0  # "not that bad"
    assert score("从来没这么差过") < -0.5 < score("差") < 0  # "never this bad" is emphatic
    assert score("I have never been so disappointed") < -0.5  # was +0.450
    assert score("I can't believe how rude your agent was") < -0.3  # was +0.392
    assert score("我没有不满意") > 0  # double negation


def test_english_negative_questions_do_not_negate() -> None:
    assert score("Isn't it too slow?") < 0  # was +0.226
    assert score("Don't you think this is unacceptable?") < -0.5
    assert score("Why isn't my refund processed? This is ridiculous") < 0


def test_degree_words_and_complements() -> None:
    assert score("服务很一般") < 0 and score("等了这么久") < 0 and score("太贵了") < 0
    assert score("烦死了") < score("烦") < 0
    assert score("差极了") < score("差") < 0
    assert score("好极了") > score("好") > 0


# ---- realistic messages: sign and ordering ------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("快递三天了还没到，物流好慢，是不是丢件了？", -1),
    ("客服态度好差，问了三次都没人理，非常失望！", -1),
    ("东西收到了，质量挺好的，谢谢你们", 1),
    ("服务挺好的，下次还会再来", 1),
    ("麻烦帮我查一下订单 88123 的物流，谢谢", 1),
    ("麻烦问一下，你们周末营业吗？", 0),
    ("这也太麻烦了吧，退个货要填这么多表", -1),
    ("申请退款三周了还没到账，太失望了，大家别买！", -1),
    ("超慢，超失望", -1),
    ("The courier was polite and the parcel arrived early, thank you!", 1),
    ("Where is my parcel? Order 4411 was due yesterday.", 0),
    ("This is the worst service I have ever had, I want a refund", -1),
    ("The product is fine but the delivery was terribly slow and nobody answered", -1),
    ("It's not bad, thanks for the quick reply", 1),
    ("Isn't it too slow? I have been waiting for two weeks", -1),
    ("Please don't ignore me again, this is unacceptable", -1),
])
def test_realistic_messages(text: str, expected: int) -> None:
    value = score(text)
    assert -1 <= value <= 1
    assert sign(value) == expected, (text, value, analyse(text).hits)


def test_english_ordering() -> None:
    assert score("not bad") > 0 > score("not good")
    assert score("terrible") < score("bad") < 0
    assert score("very good") > score("good") > score("not very good") > score("not good")
    assert score("great") > score("good") > score("fine") > 0


def test_angry_messages_cross_the_rule_thresholds_and_mild_ones_do_not() -> None:
    assert score("太差劲了，客服一直推脱，我要投诉！") <= -0.6
    assert score("物流好慢，是不是太慢了") <= -0.5
    assert -0.5 < score("对这次的服务不太满意") <= -0.3
    assert score("麻烦帮我查一下物流") >= 0  # a polite question stays a question (p4 rule: >= 0)


def test_hits_explain_the_score() -> None:
    assert terms("物流好慢") == ["慢"]
    assert terms("是不是太慢了") == ["慢"]
    assert terms("出差") == [] and terms("麻烦帮我查一下") == []
    assert terms("麻烦死了") == ["麻烦"]


def test_normalised_text_scores_the_same() -> None:
    for text in ("是不是太慢了？", "物流好慢！", "Ｉｓｎ’ｔ ｉｔ ｔｏｏ ｓｌｏｗ？", "麻烦帮我查一下", "不太满意"):
        assert analyse(normalise(text), normalised=True) == analyse(text)
